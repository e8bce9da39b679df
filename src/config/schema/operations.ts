/**
 * `metrics` and `shutdown`: how the gateway is operated (docs/operations.md).
 *
 * Metrics are served on a listener of their own by default, bound to loopback: they name the MCP
 * servers, tools, identity providers and upstream origins, and count logins and refusals, which is
 * reconnaissance material for anyone on the internet, while a Prometheus scraper sits inside the
 * network anyway. `onMainListener` is for setups where only one port can be exposed to the scraper,
 * with the path then blocked at the edge proxy.
 */
import { z } from 'zod';

export const metricsSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Record Prometheus metrics and serve them at `/metrics` (docs/operations.md lists them).'),
    listen: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address of the metrics listener; loopback by default.'),
        port: z.number().int().min(0).max(65535).default(9464).describe('TCP port of the metrics listener (0 picks a free port).'),
      })
      .default({ host: '127.0.0.1', port: 9464 })
      .describe('The separate listener serving `/metrics`, `/healthz` and `/readyz` (unless `onMainListener`).'),
    onMainListener: z
      .boolean()
      .default(false)
      .describe(
        'Serve `/metrics` on the main listener instead of a separate one; anyone who reaches the gateway can then read it, so block the path at the edge.',
      ),
  })
  .default({ enabled: false, listen: { host: '127.0.0.1', port: 9464 }, onMainListener: false })
  .describe('Prometheus metrics.');

export const shutdownSchema = z
  .object({
    drainSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(25)
      .describe(
        "On SIGTERM or SIGINT: how long requests in flight may take to finish before they are cut and the process exits. Keep it below the orchestrator's kill timeout (Kubernetes: `terminationGracePeriodSeconds`, 30 by default).",
      ),
  })
  .default({ drainSeconds: 25 })
  .describe('Graceful shutdown: readiness fails, the listener closes, requests in flight finish, SSE streams end cleanly, stdio servers stop.');
