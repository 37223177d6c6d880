// The package's public surface: the HTTP client and the types it speaks.
export { HttpClient } from './http-client.js';
export type * from './client.js';
export { StrataError, type ErrorCode } from '../errors.js';
