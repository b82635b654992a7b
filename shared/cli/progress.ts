// A progress bar on stderr: redrawn in place on a terminal, a few plain lines otherwise (CI logs).
export interface Progress {
  update(done: number, detail?: string): void;
  done(message?: string): void;
}

export function progress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  const tty = Boolean(stream.isTTY);
  const start = Date.now();
  let lastPct = -1;
  let lastDraw = 0;
  const draw = (done: number, detail = '') => {
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    if (tty) {
      const now = Date.now();
      if (now - lastDraw < 50 && done < total) return;
      lastDraw = now;
      const width = 28;
      const fill = Math.round((width * pct) / 100);
      const bar = '█'.repeat(fill) + '░'.repeat(width - fill);
      stream.write(
        `\r${label} ${bar} ${String(pct).padStart(3)}% ${done}/${total} ${detail}`.slice(0, 160) + '\x1b[K',
      );
    } else if (pct >= lastPct + 25 || (done === total && pct !== lastPct)) {
      lastPct = pct;
      stream.write(`${label}: ${pct}% (${done}/${total})\n`);
    }
  };
  return {
    update: draw,
    done(message) {
      draw(total);
      const secs = ((Date.now() - start) / 1000).toFixed(1);
      stream.write(`${tty ? '\n' : ''}${label}: done in ${secs}s${message ? ` — ${message}` : ''}\n`);
    },
  };
}
