import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, StrataError } from '../errors.js';

// The instance's Ed25519 key pair, which signs audit checkpoints. It lives in
// <home>/keys/ (private key mode 0600) rather than in the database, so someone
// who can only write the database cannot sign a rewritten history.

const PRIVATE = 'instance-ed25519.pem';
const PUBLIC = 'instance-ed25519.pub.pem';

export interface InstanceKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The raw 32-byte public key, base64: what checkpoints carry. */
  publicKeyBase64: string;
}

export function keysDir(home: string): string {
  return join(home, 'keys');
}

/** Makes the key pair if there is none yet (at init, or lazily for instances made before keys existed). */
export function ensureInstanceKey(home: string): InstanceKey {
  const dir = keysDir(home);
  const privPath = join(dir, PRIVATE);
  if (!existsSync(privPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // Write a temporary file then hard-link it into place: link fails if the
    // key exists, so of two processes racing here exactly one key wins.
    const tmp = `${privPath}.${process.pid}.tmp`;
    writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    try {
      linkSync(tmp, privPath);
      writeFileSync(join(dir, PUBLIC), publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
  return loadInstanceKey(home);
}

export function loadInstanceKey(home: string): InstanceKey {
  const privPath = join(keysDir(home), PRIVATE);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(privPath));
  } catch (err) {
    throw new StrataError('FAILED_PRECONDITION', `cannot read the instance key ${privPath}: ${(err as Error).message}`, { cause: err });
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicKeyBase64: rawPublicKey(publicKey) };
}

function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url').toString('base64');
}

export function publicKeyFromBase64(b64: string): KeyObject {
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) throw new InvalidArgumentError(`public key "${b64}" is not a base64 Ed25519 key (32 bytes)`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

export function signText(key: InstanceKey, text: string): string {
  return sign(null, Buffer.from(text, 'utf8'), key.privateKey).toString('base64');
}

export function verifyText(publicKey: KeyObject, text: string, signatureBase64: string): boolean {
  try {
    return verify(null, Buffer.from(text, 'utf8'), publicKey, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}
