// `npx switchyard <command>`: model files from the command line.
import { exportOnnx } from './commands/export-onnx.ts';
import { init } from './commands/init.ts';
import { inspect } from './commands/inspect.ts';
import { quantize } from './commands/quantize.ts';
import { split } from './commands/split.ts';
import { verify } from './commands/verify.ts';
import { parse, UsageError, type Command } from './command.ts';
import { evaluate, train } from '../../train/src/cli.ts';

export const COMMANDS: Command[] = [init, inspect, verify, quantize, split, exportOnnx, train, evaluate];

function help(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: switchyard <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    "run 'switchyard <command> --help' for a command's options",
  ].join('\n');
}

/** Runs the CLI; returns the exit code (0 ok, 1 the work failed, 2 the call was wrong). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    console.error(
      `switchyard: unknown command "${name}": expected one of ${COMMANDS.map((c) => c.name).join(', ')}`,
    );
    return 2;
  }
  try {
    const { values, positionals } = parse(cmd, rest);
    if (values.help) {
      console.log(`${cmd.summary}\n\nusage: ${cmd.usage}`);
      return 0;
    }
    await cmd.run(values as Record<string, string | boolean | undefined>, positionals);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(`switchyard ${cmd.name}: ${err.message}\n\nusage: ${cmd.usage}`);
      return 2;
    }
    // Named errors (WeightsError, ConfigError, ...) carry complete messages; a stack would only hide them.
    console.error(
      `switchyard ${cmd.name}: ${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`,
    );
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
