import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argumentAudit, createAuditLogger, isAuditEvent, redactArguments } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';

function sink(): { lines: Record<string, unknown>[]; write: (line: string) => void } {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
}

test('the audited families: sign-in, consent, tokens, clients, grants, revocation, forward-auth, keys, admin, MCP calls', () => {
  for (const name of [
    'login.succeeded',
    'login.denied',
    'consent.approved',
    'consent.denied',
    'consent.forged',
    'token.issued',
    'token.refused',
    'token.replayed',
    'client.registered',
    'grant.revoked',
    'revocation.refused',
    'forward_auth.allowed',
    'forward_auth.denied',
    'local.signin.failed',
    'refresh.denied',
    'signing_key.activated',
    'admin.grant_revoked',
    'mcp.call',
    'idp_token.reauthentication_required',
  ])
    assert.ok(isAuditEvent(name), name);
  for (const name of ['revocation_list.recovered', 'stdio.process_started', 'upstream.stream_broken', 'idp_token.refreshed', 'gateway.malformed_request'])
    assert.ok(!isAuditEvent(name), `${name} is operational`);
});

test('audit events logged on the operational logger are copied to the audit stream, with child bindings, whatever the level', () => {
  const audit = sink();
  const operational = sink();
  const logger = createLogger('warn', operational, createAuditLogger('off', audit));
  logger.child({ server: 'tools' }).info({ event: 'login.succeeded', userId: 'corp:alice', access_token: 'secret-token' }, 'signed in');
  logger.info({ event: 'stdio.process_started' }, 'operational only');
  logger.warn({ event: 'consent.forged', reason: 'csrf_invalid' }, 'forged');
  logger.error('plain error');

  assert.deepEqual(
    audit.lines.map((line) => [line.event, line.stream, line.level]),
    [
      ['login.succeeded', 'audit', 30],
      ['consent.forged', 'audit', 40],
    ],
  );
  const first = audit.lines[0] ?? {};
  assert.equal(first.server, 'tools', "the child's bindings come along");
  assert.equal(first.userId, 'corp:alice');
  assert.equal(first.msg, 'signed in');
  assert.equal(first.access_token, '[redacted]', 'secrets never reach the audit stream');
  // The operational log keeps its level: info lines are not written at `warn`.
  assert.deepEqual(
    operational.lines.map((line) => line.event ?? line.msg),
    ['consent.forged', 'plain error'],
  );
});

test('at level info the operational log keeps its copy of audit events (nothing is moved away from it)', () => {
  const audit = sink();
  const operational = sink();
  const logger = createLogger('info', operational, createAuditLogger('off', audit));
  logger.info({ event: 'token.issued', clientId: 'c' }, 'issued');
  assert.equal(audit.lines.length, 1);
  assert.equal(operational.lines.length, 1);
  assert.equal(operational.lines[0]?.stream, undefined, 'operational lines are not marked as audit');
});

test('a silent operational logger still feeds the audit stream; audit destination off writes nothing', () => {
  const audit = sink();
  const operational = sink();
  createLogger('silent', operational, createAuditLogger('off', audit)).info({ event: 'grant.revoked' }, 'revoked');
  assert.equal(audit.lines.length, 1);
  assert.equal(operational.lines.length, 0);
  const off = createAuditLogger('off');
  assert.equal(off.isLevelEnabled('info'), false);
});

test('arguments: configured keys redacted at any depth, case-insensitively, credential keys always', () => {
  const settings = argumentAudit(true, ['SSN', 'apiKey']);
  const redacted = redactArguments(
    { query: 'q', ssn: '123', nested: { ApiKey: 'k', list: [{ password: 'p', keep: 1 }] }, token: 't', n: null },
    settings.redactKeys,
  );
  assert.deepEqual(redacted, {
    query: 'q',
    ssn: '[redacted]',
    nested: { ApiKey: '[redacted]', list: [{ password: '[redacted]', keep: 1 }] },
    token: '[redacted]',
    n: null,
  });
  let deep: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < 20; i++) deep = { deep };
  assert.match(JSON.stringify(redactArguments(deep, settings.redactKeys)), /\[truncated\]/, 'depth is bounded');
});
