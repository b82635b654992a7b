// Adam with global-norm gradient clipping, written out so that its moments can be checkpointed and a
// resumed run continues bit for bit.
import type { HostTensor } from './model-tf.ts';
import { tf } from './tf.ts';

export interface AdamOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Gradients are scaled down to this global L2 norm when larger (0: no clipping). */
  clipNorm: number;
}

export const DEFAULT_ADAM: AdamOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, clipNorm: 1 };

export class Adam {
  t = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(readonly opts: AdamOptions = DEFAULT_ADAM) {}

  /** One update; returns the gradient norm before clipping. `grads` is keyed like `vars`. */
  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): number {
    const { beta1, beta2, eps, clipNorm } = this.opts;
    this.t++;
    const norm = Math.sqrt(
      tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]),
    );
    const scale = clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const [name, g] of grads) {
      const variable = vars.get(name);
      if (!variable) throw new RangeError(`gradient "${name}": expected a variable of that name, found none`);
      const m0 = this.m.get(name) ?? tf.zerosLike(variable);
      const v0 = this.v.get(name) ?? tf.zerosLike(variable);
      const [m1, v1] = tf.tidy(() => {
        const gs = tf.mul(g, scale);
        const m = tf.add(tf.mul(m0, beta1), tf.mul(gs, 1 - beta1));
        const v = tf.add(tf.mul(v0, beta2), tf.mul(tf.square(gs), 1 - beta2));
        const step = tf.div(tf.mul(m, lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        variable.assign(tf.sub(variable, step));
        return [m, v];
      });
      m0.dispose();
      v0.dispose();
      this.m.set(name, m1);
      this.v.set(name, v1);
    }
    return norm;
  }

  /** Moments as host tensors, named `m/<var>` and `v/<var>`. */
  state(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [which, map] of [
      ['m', this.m],
      ['v', this.v],
    ] as const)
      for (const [n, t] of map)
        out.set(`${which}/${n}`, { shape: [...t.shape], data: t.dataSync() as Float32Array });
    return out;
  }

  load(t: number, tensors: Map<string, HostTensor>, prefix = ''): void {
    this.t = t;
    for (const [key, h] of tensors) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const which = rest.slice(0, 2);
      if (which !== 'm/' && which !== 'v/') continue;
      const map = which === 'm/' ? this.m : this.v;
      map.get(rest.slice(2))?.dispose();
      map.set(rest.slice(2), tf.tensor(h.data, h.shape));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
