// A loopback HTTP proxy in front of one GPU-tier replica, so that a test can make that replica slow, hold a
// chosen step request while it breaks something else, swap the process behind it, or capture what the edge
// sends. The edge's shard map names the proxy; the process behind it can come and go.
import {
  Agent,
  createServer,
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CapturedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Hold {
  at: number;
  reached: () => void;
  released: Promise<void>;
}

export interface HeldStep {
  /** Resolves when the held request has arrived (and is waiting). */
  reached: Promise<void>;
  /** Lets it go on to whatever process is behind the proxy now. */
  release(): void;
}

export class ReplicaProxy {
  /** The replica's base URL; null: nothing behind the proxy (connections are cut, as to a dead host). */
  target: string | null = null;
  /** Every request waits this long before it is forwarded (a slow replica). */
  delayMs = 0;
  /** POST /v1/step requests that arrived. */
  steps = 0;
  /** Keep a copy of each POST /v1/step request (security tests replay them). */
  capture = false;
  readonly captured: CapturedRequest[] = [];
  /** For each request the client gave up on while the proxy held or delayed it: how long it had waited (ms). */
  readonly abandoned: number[] = [];
  /**
   * How each forwarded POST /v1/step ended: an answer read to its end (`status`, `whole`), an answer cut off
   * after its status line (`whole: false`: a half answer), or no answer at all (`error`, e.g. refused).
   */
  readonly outcomes: { status?: number; whole?: boolean; error?: string }[] = [];
  private holds: Hold[] = [];
  private readonly agent = new Agent({ keepAlive: true });

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<ReplicaProxy> {
    let self: ReplicaProxy | undefined;
    const server = createServer((req, res) => void self!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self = new ReplicaProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return self;
  }

  /** Holds the n-th POST /v1/step request from now (n = 1: the next one) until released. */
  holdStep(n: number): HeldStep {
    let reached!: () => void;
    let release!: () => void;
    const hit = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    this.holds.push({ at: this.steps + n, reached, released });
    return { reached: hit, release };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let gone = false;
    const goneNow = new Promise<void>((r) =>
      res.on('close', () => {
        if (!res.writableEnded) {
          gone = true;
          r();
        }
      }),
    );
    const path = req.url ?? '/';
    if (req.method === 'POST' && path === '/v1/step') {
      this.steps++;
      if (this.capture) this.captured.push({ method: req.method, path, headers: req.headers, body });
      const hold = this.holds.find((h) => h.at === this.steps);
      if (hold) {
        this.holds = this.holds.filter((h) => h !== hold);
        hold.reached();
        await hold.released;
      }
    }
    if (this.delayMs > 0) await Promise.race([new Promise((r) => setTimeout(r, this.delayMs)), goneNow]);
    if (gone) {
      this.abandoned.push(Date.now() - t0);
      return;
    }
    const target = this.target;
    if (!target) {
      req.socket.destroy();
      return;
    }
    const headers = { ...req.headers, host: new URL(target).host };
    const outcome: (typeof this.outcomes)[number] = {};
    if (path === '/v1/step') this.outcomes.push(outcome);
    const out = request(target + path, { method: req.method, headers, agent: this.agent }, (r) => {
      outcome.status = r.statusCode;
      outcome.whole = false;
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      r.on('end', () => (outcome.whole = r.complete));
      r.on('error', () => req.socket.destroy());
    });
    // The replica is gone or broke the connection: the edge sees what a crash looks like, a cut connection.
    out.on('error', (e: NodeJS.ErrnoException) => {
      outcome.error ??= e.code ?? e.message;
      req.socket.destroy();
    });
    out.end(body);
  }

  async close(): Promise<void> {
    for (const h of this.holds) h.reached();
    this.holds = [];
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
