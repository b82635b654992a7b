// `switchyard-gpu`: parse the settings, start the server, print the ready line, drain on SIGTERM/SIGINT.
import { availableParallelism } from 'node:os';
import { checkUsage, formatCheck, parseCheckArgs, runCheck } from './check.ts';
import { ConfigError, parseOptions, usage } from './config.ts';
import { startServer } from './server.ts';

/** "Name: message", the name left out for a plain Error. */
function errorText(e: unknown): string {
  const err = e as Error;
  return `${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`;
}

/** `switchyard-gpu check …`: 0 when every output is within tolerance, 1 when not or on failure, 2 bad call. */
async function check(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCheckArgs(argv, availableParallelism());
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`switchyard-gpu check: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (parsed.help) {
    console.log(checkUsage());
    return 0;
  }
  try {
    const report = await runCheck(parsed.options, console.error);
    console.log(parsed.json ? JSON.stringify(report, null, 2) : formatCheck(report));
    return report.ok ? 0 : 1;
  } catch (e) {
    console.error(`switchyard-gpu check: ${errorText(e)}`);
    return e instanceof ConfigError ? 2 : 1;
  }
}

/** Runs the server until a signal; resolves to the process exit code (0 clean, 1 failed, 2 bad call). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv[0] === 'check') return check(argv.slice(1));
  let parsed;
  try {
    parsed = parseOptions(argv, env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`switchyard-gpu: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (parsed.help) {
    console.log(usage());
    return 0;
  }
  const o = parsed.options;
  let server;
  try {
    server = await startServer(o);
  } catch (e) {
    console.error(`switchyard-gpu: ${errorText(e)}`);
    return 1;
  }
  console.log(server.readyLine);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        console.error(`switchyard-gpu: ${signal} again; exiting without waiting`);
        resolve(1);
        return;
      }
      stopping = true;
      console.error(`switchyard-gpu: ${signal}: draining (in-flight requests finish, new ones get 503)`);
      const timer = setTimeout(() => {
        console.error(`switchyard-gpu: drain took longer than ${o.drainTimeoutMs} ms; exiting`);
        resolve(1);
      }, o.drainTimeoutMs);
      timer.unref();
      server.close().then(
        () => {
          clearTimeout(timer);
          console.error('switchyard-gpu: stopped');
          resolve(0);
        },
        (e: Error) => {
          console.error(`switchyard-gpu: shutdown failed: ${e.message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
