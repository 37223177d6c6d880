import { codeFromStatus, StrataError, type ErrorCode } from '../errors.js';
import type { GrantInfo, TokenInfo, UserInfo } from '../governance/access.js';

// Users, tokens and grants over HTTP (api/routes/access.ts). The CLI's
// `strata user|token|grant|revoke|whoami` use this with --server, and an
// in-process implementation (cli/access-commands.ts) without.

export interface WhoAmI {
  user: string;
  /** True for the instance owner (no token: the in-process CLI's OS user, or a loopback request in auto mode). */
  owner: boolean;
  token: string | null;
  grants: GrantInfo[];
}

export interface AccessClient {
  createUser(name: string): Promise<UserInfo>;
  listUsers(): Promise<UserInfo[]>;
  deleteUser(name: string): Promise<void>;
  /** `user` defaults to the caller; `expires` is a duration (30d, 12h). The result's `token` is the only copy of the secret. */
  createToken(opts: { user?: string; name?: string; expires?: string }): Promise<TokenInfo & { token: string }>;
  listTokens(opts?: { user?: string }): Promise<TokenInfo[]>;
  revokeToken(id: string): Promise<TokenInfo>;
  grant(role: string, user: string, on?: string): Promise<GrantInfo>;
  revoke(role: string, user: string, on?: string): Promise<GrantInfo>;
  whoami(): Promise<WhoAmI>;
  close(): Promise<void>;
}

export class HttpAccessClient implements AccessClient {
  private readonly base: string;

  constructor(baseUrl: string, private readonly opts: { token?: string } = {}) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  createUser(name: string): Promise<UserInfo> {
    return this.call('POST', '/api/v1/users', { name });
  }
  listUsers(): Promise<UserInfo[]> {
    return this.call('GET', '/api/v1/users');
  }
  async deleteUser(name: string): Promise<void> {
    await this.call('DELETE', `/api/v1/users/${encodeURIComponent(name)}`);
  }
  createToken(opts: { user?: string; name?: string; expires?: string }): Promise<TokenInfo & { token: string }> {
    return this.call('POST', '/api/v1/tokens', opts);
  }
  listTokens(opts: { user?: string } = {}): Promise<TokenInfo[]> {
    return this.call('GET', `/api/v1/tokens${opts.user ? `?user=${encodeURIComponent(opts.user)}` : ''}`);
  }
  revokeToken(id: string): Promise<TokenInfo> {
    return this.call('POST', `/api/v1/tokens/${encodeURIComponent(id)}/revoke`);
  }
  grant(role: string, user: string, on?: string): Promise<GrantInfo> {
    return this.call('POST', '/api/v1/grants', { role, user, ...(on ? { on } : {}) });
  }
  revoke(role: string, user: string, on?: string): Promise<GrantInfo> {
    return this.call('POST', '/api/v1/grants/revoke', { role, user, ...(on ? { on } : {}) });
  }
  whoami(): Promise<WhoAmI> {
    return this.call('GET', '/api/v1/whoami');
  }
  async close(): Promise<void> {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new StrataError('UNAVAILABLE', `cannot reach the Strata server at ${this.base}: ${(err as Error).message} (is \`strata server\` running?)`, { cause: err });
    }
    const text = await res.text();
    if (!res.ok) {
      let code: ErrorCode = codeFromStatus(res.status);
      let message = text.slice(0, 500) || `HTTP ${res.status} from ${method} ${this.base}${path}`;
      try {
        const e = (JSON.parse(text) as { error?: { code?: ErrorCode; message?: string } }).error;
        if (e?.code) code = e.code;
        if (e?.message) message = e.message;
      } catch {
        // not Strata's error shape: keep the text
      }
      throw new StrataError(code, message);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
