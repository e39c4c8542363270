import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { formatIssues } from '../model/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * Bearer tokens with roles. The tokens file holds names, roles and either the sha256 of a token
 * (preferred) or the token itself. Lookups hash the presented token and compare it with every
 * known hash in constant time, so neither the match nor its position leaks through timing.
 */

export type Role = 'read' | 'admin';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256 of the token)');

export const TokenEntrySchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$/, 'must be 1-63 letters, digits, "_", ".", "@" or "-"'),
    role: z.enum(['read', 'admin']),
    sha256: Sha256.optional(),
    token: z.string().min(16, 'must be at least 16 characters').optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.sha256 === undefined) === (t.token === undefined))
      ctx.addIssue({ code: 'custom', path: ['sha256'], message: 'give exactly one of sha256 or token' });
  });

export const TokensFileSchema = z
  .object({ tokens: z.array(TokenEntrySchema).min(1, 'at least one token') })
  .strict()
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    f.tokens.forEach((t, i) => {
      if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: ['tokens', i, 'name'], message: `duplicate token name ${t.name}` });
      seen.add(t.name);
    });
  });

export interface Principal {
  name: string;
  role: Role;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export class TokenSet {
  private readonly entries: Array<{ hash: Buffer; principal: Principal }>;

  constructor(entries: Array<{ name: string; role: Role; sha256?: string | undefined; token?: string | undefined }>) {
    this.entries = entries.map((e) => ({
      hash: e.sha256 !== undefined ? Buffer.from(e.sha256, 'hex') : sha256(e.token!),
      principal: { name: e.name, role: e.role },
    }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal of a presented token, or undefined. Constant time over the whole set. */
  verify(token: string): Principal | undefined {
    const presented = sha256(token);
    let found: Principal | undefined;
    for (const e of this.entries) if (timingSafeEqual(presented, e.hash) && !found) found = e.principal;
    return found;
  }

  static fromFile(path: string): TokenSet {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(path, 'utf8'));
    } catch (cause) {
      throw new FulcrumError('INVALID_CONFIG', `tokens file ${path}: ${(cause as Error).message}`, { cause });
    }
    const r = TokensFileSchema.safeParse(doc);
    if (!r.success) throw new FulcrumError('INVALID_CONFIG', `tokens file ${path}:\n${formatIssues(r.error)}`);
    return new TokenSet(r.data.tokens);
  }
}

/**
 * Without a tokens file: one admin token in `<stateDir>/admin.token` (0600, created once), so that
 * root on this node can use the CLI and nobody else can change anything.
 */
export function localAdminToken(stateDir: string): { path: string; tokens: TokenSet } {
  const path = join(stateDir, 'admin.token');
  if (!existsSync(path)) writeFileAtomic(path, randomBytes(32).toString('base64url') + '\n', 0o600);
  const token = readFileSync(path, 'utf8').trim();
  return { path, tokens: new TokenSet([{ name: 'local-admin', role: 'admin', token }]) };
}

export function hashToken(token: string): string {
  return sha256(token).toString('hex');
}
