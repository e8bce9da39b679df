/**
 * The problems of one configuration load, collected rather than thrown so that an operator sees every
 * problem in one pass. It also remembers where each value came from (a line of the file, or the
 * environment variable that set it) and which values are secret, so no message ever repeats one.
 */
import type { ConfigProblem } from './config-error.ts';
import { formatPath, isPlainObject, type PathSegment, startsWith } from './key-path.ts';

/** Keys whose values must never appear in a message. */
const SECRET_KEY = /secret|password|key|token/i;

export type Locator = (path: readonly PathSegment[]) => { line?: number; column?: number };

export class LoadReport {
  readonly file: string | undefined;
  readonly #problems: ConfigProblem[] = [];
  readonly #secrets = new Set<string>();
  /** Paths whose value already produced a problem; schema issues at or under them would repeat it. */
  readonly #failedPaths: PathSegment[][] = [];
  readonly #envPaths: { path: PathSegment[]; name: string }[] = [];
  #locate: Locator = () => ({});

  constructor(file: string | undefined) {
    this.file = file;
  }

  /** Where keys are in the file (set once the YAML is parsed). */
  useLocator(locate: Locator): void {
    this.#locate = locate;
  }

  /** A problem whose place is already known (a YAML syntax error, an environment variable). */
  push(problem: ConfigProblem): void {
    this.#problems.push(problem);
  }

  /** A problem at a key, attributed to the variable that set the value, else to its line in the file. */
  add(path: PathSegment[], message: string): void {
    const fromEnv = [...this.#envPaths].reverse().find((entry) => startsWith(path, entry.path));
    if (fromEnv) {
      this.#problems.push({ path: formatPath(path), message, source: fromEnv.name });
    } else {
      this.#problems.push({ path: formatPath(path), message, ...this.#locate(path), ...(this.file ? { source: this.file } : {}) });
    }
  }

  /** A value in the file that could not be used at all (a reference that did not resolve). */
  fileProblem(path: PathSegment[], message: string): void {
    this.#failedPaths.push(path);
    this.#problems.push({ path: formatPath(path), message, ...this.#locate(path), source: this.file });
  }

  /** A variable whose value could not be used at all. */
  envProblem(path: PathSegment[], name: string, message: string): void {
    this.#failedPaths.push(path);
    this.#problems.push({ path: formatPath(path), message, source: name });
  }

  /** The value at `path` came from the variable `name`. */
  setFromEnv(path: PathSegment[], name: string): void {
    this.#envPaths.push({ path, name });
  }

  /** True when `path` lies under a value that already failed (its schema issues would repeat that). */
  alreadyFailed(path: readonly PathSegment[]): boolean {
    return this.#failedPaths.some((failed) => startsWith(path, failed));
  }

  rememberSecret(value: string): void {
    // Very short strings would scrub ordinary words out of messages while protecting nothing.
    if (value.length >= 4) this.#secrets.add(value);
  }

  /** Values under secret-named keys (clientSecret, encryptionKeys, ...), whatever their source. */
  collectSecrets(data: unknown): void {
    const visit = (value: unknown, secret: boolean): void => {
      if (typeof value === 'string') {
        if (secret) this.rememberSecret(value);
      } else if (Array.isArray(value)) {
        for (const item of value) visit(item, secret);
      } else if (isPlainObject(value)) {
        for (const [key, item] of Object.entries(value)) visit(item, secret || SECRET_KEY.test(key));
      }
    };
    visit(data, false);
  }

  /** Every problem, secrets scrubbed, file problems in line order. */
  finish(): ConfigProblem[] {
    const secrets = [...this.#secrets].sort((a, b) => b.length - a.length);
    const scrub = (text: string): string => secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
    return this.#problems
      .map((problem, index) => ({ problem: { ...problem, message: scrub(problem.message), path: scrub(problem.path) }, index }))
      .sort((a, b) => (a.problem.line ?? Infinity) - (b.problem.line ?? Infinity) || a.index - b.index)
      .map(({ problem }) => problem);
  }
}
