import { z } from 'zod';
import { canonicalIp, familyOf } from './net.js';

/** The model's basic types, one definition each, shared by every section. */

/** Names of services, VRRP instances, scripts and groups. */
export const Name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

/** An IPv4 or IPv6 address, in canonical form (IPv6 per RFC 5952). */
export const IpAddress = z
  .string()
  .refine((s) => familyOf(s) !== undefined, { message: 'must be an IPv4 or IPv6 address' })
  .transform(canonicalIp);

/**
 * A Linux interface name as the kernel accepts it (dev_valid_name): 1-15 bytes (IFNAMSIZ 16 with
 * the NUL), not "." or "..", no "/", ":" or whitespace. "eth0:1" is an address label, not an interface.
 */
export const InterfaceName = z
  .string()
  .refine((s) => Buffer.byteLength(s) >= 1 && Buffer.byteLength(s) <= 15 && s !== '.' && s !== '..' && !/[\s/:]/.test(s), {
    message: 'must be an interface name of 1-15 characters without "/", ":" or spaces',
  });

/** A TCP/UDP port that can be connected to (1-65535). */
export const Port = z.number().int().min(1).max(65535);
