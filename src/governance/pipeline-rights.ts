import type { JobTable } from '../meta/schema.js';
import type { Instance } from '../instance.js';
import { inputRepos, type PipelineSpec } from '../pipelines/spec.js';
import { auditOf, type Level, type Resource } from './access.js';
import { record } from './authorize.js';

// Pipelines run with the rights of the user who created them, checked again
// before every job: a creator who lost read on an input (or write on the
// output repo) makes the job fail FORBIDDEN instead of copying data they can
// no longer see. Pipelines whose creator was never a Strata user (made by the
// instance owner before users existed, or by the owner without a token) run
// with the owner's rights, as everything did before access control.

export function pipelineAuthorizer(instance: Instance): (job: JobTable, spec: PipelineSpec) => Promise<string | null> {
  return async (job, spec) => {
    const row = await instance.meta.db.selectFrom('pipelines').select('creator').where('name', '=', job.pipeline).executeTakeFirst();
    const creator = row?.creator ?? '';
    if (!creator || (await instance.access.userState(creator)) === 'unknown') return null;
    const needs: { level: Level; resource: Resource }[] = [
      ...inputRepos(spec).filter((i) => i.kind === 'pfs').map((i) => ({ level: 'read' as const, resource: `repo:${i.repo}` as Resource })),
      { level: 'write', resource: `repo:${job.pipeline}` },
    ];
    const principal = { user: creator };
    for (const need of needs) {
      try {
        await instance.access.check(principal, need.level, need.resource);
      } catch (err) {
        const reason = `FORBIDDEN: pipeline ${job.pipeline} runs with the rights of its creator, and ${(err as Error).message}`;
        await record(auditOf(instance), {
          actor: `pipeline:${job.pipeline}`,
          action: 'job.run',
          target: `pipeline:${job.pipeline}/job:${job.id}`,
          outcome: 'denied',
          client: 'local',
          detail: { on_behalf_of: creator, code: 'FORBIDDEN', needs: `${need.level} on ${need.resource}` },
        });
        return reason;
      }
    }
    return null;
  };
}
