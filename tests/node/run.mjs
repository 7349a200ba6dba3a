#!/usr/bin/env node
// Run one interop scenario against a Pusher-protocol server and print one JSON result.
//
//   node run.mjs '{"scenario":"public","host":"127.0.0.1","port":6001,
//                  "appId":"app-id","key":"app-key","secret":"app-secret"}'
//   node run.mjs list          -> prints the scenario names
//
// Optional parameters: "suffix" (appended to every channel name; random by default),
// "deadlineMs" (overall deadline, default 30000). Every wait inside is bounded by 5 s
// (env INTEROP_STEP_MS).
//
// Output (stdout, one line): {"scenario", "ok", "checks":[{name, ok, detail?}], "notes",
// "error"?, "frames"? (per client, on failure: every frame received and sent)}.
// Exit code 0 when ok, 1 otherwise (2 for bad usage).
import { CheckFailed, Ctx } from './lib.mjs';
import { scenarios as echoScenarios } from './scenarios_echo.mjs';
import { scenarios as pusherScenarios } from './scenarios_pusher.mjs';

const all = { ...pusherScenarios, ...echoScenarios };

function emit(result, code) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

const arg = process.argv[2];
if (arg === 'list') {
  process.stdout.write(`${JSON.stringify(Object.keys(all))}\n`);
  process.exit(0);
}
let params;
try {
  params = JSON.parse(arg || '');
} catch {
  process.stderr.write('usage: node run.mjs \'{"scenario":"public","port":6001,...}\' | node run.mjs list\n');
  process.exit(2);
}
const fn = all[params.scenario];
if (!fn) {
  emit({ scenario: params.scenario, ok: false, error: `unknown scenario; known: ${Object.keys(all).join(', ')}` }, 2);
} else {
  const ctx = new Ctx(params);
  const started = Date.now();
  const result = (ok, error) => ({
    scenario: params.scenario,
    ok,
    suffix: ctx.suffix,
    ms: Date.now() - started,
    checks: ctx.checks,
    notes: ctx.notes,
    ...(error ? { error, frames: ctx.frames() } : {}),
  });
  const deadlineMs = Number(params.deadlineMs || 30000);
  setTimeout(() => {
    ctx.disconnectAll();
    emit(result(false, `overall deadline of ${deadlineMs} ms reached`), 1);
  }, deadlineMs).unref();
  // An unhandled rejection (e.g. a waiter that lost a race) must not kill the run silently.
  process.on('unhandledRejection', (e) => ctx.notes.push(`unhandled rejection: ${e?.message || e}`));
  try {
    await fn(ctx);
    const failed = ctx.checks.filter((c) => !c.ok);
    ctx.disconnectAll();
    const error = failed.length ? [...ctx.errors, ...failed.filter((c) => c.soft).map((c) => `${c.name}: ${c.detail}`)].join(' | ') : undefined;
    emit(result(failed.length === 0, error), failed.length ? 1 : 0);
  } catch (e) {
    ctx.disconnectAll();
    emit(result(false, e instanceof CheckFailed ? e.message : String(e?.stack || e)), 1);
  }
}
