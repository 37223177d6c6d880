import type { Kysely } from 'kysely';
import type { DataService } from '../data/service.js';
import type { Schema } from '../meta/schema.js';

// Lineage as a graph of commits and the jobs between them, walked from one
// commit upstream (what it was made from), downstream (what was made from
// it), or both. Node ids: `repo@commit` for commits, `job:<id>` for jobs.
// Later layers add runs, models and deployments as further node kinds.

export interface LineageNode {
  id: string;
  kind: 'commit' | 'job';
  repo?: string;
  commit?: string;
  pipeline?: string;
  state?: string;
}

export interface LineageGraph {
  nodes: LineageNode[];
  edges: { from: string; to: string }[];
}

export class Lineage {
  constructor(
    private db: Kysely<Schema>,
    private data: DataService,
  ) {}

  async graph(ref: string, direction: 'upstream' | 'downstream' | 'both' = 'both'): Promise<LineageGraph> {
    const start = (await this.data.resolve(ref)).commit;
    const nodes = new Map<string, LineageNode>();
    const edges = new Map<string, { from: string; to: string }>();
    const edge = (from: string, to: string) => edges.set(`${from}>${to}`, { from, to });
    const commitNode = (repo: string, commit: string) => {
      const id = `${repo}@${commit}`;
      if (!nodes.has(id)) nodes.set(id, { id, kind: 'commit', repo, commit });
      return id;
    };
    const jobNode = (job: { id: string; pipeline: string; state: string }) => {
      const id = `job:${job.id}`;
      if (!nodes.has(id)) nodes.set(id, { id, kind: 'job', pipeline: job.pipeline, state: job.state });
      return id;
    };
    commitNode(start.repo, start.id);

    if (direction !== 'downstream') {
      const seen = new Set<string>();
      const up = async (repo: string, commit: string) => {
        if (seen.has(commit)) return;
        seen.add(commit);
        const row = await this.db.selectFrom('commits').select(['job', 'provenance']).where('id', '=', commit).executeTakeFirst();
        if (!row) return;
        const self = commitNode(repo, commit);
        const job = row.job ? await this.db.selectFrom('jobs').select(['id', 'pipeline', 'state']).where('id', '=', row.job).executeTakeFirst() : undefined;
        const via = job ? jobNode(job) : undefined;
        if (via) edge(via, self);
        for (const p of JSON.parse(row.provenance) as { repo: string; commit: string }[]) {
          const source = commitNode(p.repo, p.commit);
          if (via) edge(source, via);
          else edge(source, self);
          await up(p.repo, p.commit);
        }
      };
      await up(start.repo, start.id);
    }

    if (direction !== 'upstream') {
      const seen = new Set<string>();
      const down = async (repo: string, commit: string) => {
        if (seen.has(commit)) return;
        seen.add(commit);
        const self = commitNode(repo, commit);
        const jobs = await this.db
          .selectFrom('job_inputs')
          .innerJoin('jobs', 'jobs.id', 'job_inputs.job')
          .select(['jobs.id', 'jobs.pipeline', 'jobs.state', 'jobs.output_commit'])
          .where('job_inputs.commit', '=', commit)
          .execute();
        for (const j of jobs) {
          const via = jobNode(j);
          edge(self, via);
          if (j.output_commit) {
            edge(via, commitNode(j.pipeline, j.output_commit));
            await down(j.pipeline, j.output_commit);
          }
        }
      };
      await down(start.repo, start.id);
    }
    return { nodes: [...nodes.values()], edges: [...edges.values()] };
  }
}
