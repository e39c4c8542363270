/**
 * One CLI subcommand. `path` is the words that select it ("ipvs list"); `run` gets the remaining
 * argv and returns the exit code. Output goes through the given streams so tests can capture it.
 */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  path: string[];
  summary: string;
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}
