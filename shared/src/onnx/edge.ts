// The edge's per-step compute as ONNX graphs, for runtimes that run ONNX at the edge (onnxruntime-web):
// the controller (LSTM cell + gate softmax) and the output head (+ STM key/value). The STM read stays
// outside: its input r is computed by the caller.
import { GraphBuilder } from './graph.ts';
import { permuteRows, WeightEmitter, type WeightSource } from './weights.ts';

/**
 * Row order of ONNX's LSTM gates (i, o, f, c) taken from ours (i, f, g, o, as PyTorch): block b of the
 * permuted matrix is our block ONNX_GATE_FROM[b].
 */
const ONNX_GATE_FROM = [0, 3, 1, 2];

function gateRows(H: number): number[] {
  return ONNX_GATE_FROM.flatMap((b) => Array.from({ length: H }, (_, j) => b * H + j));
}

/**
 * token [1] int64, r [1, S] (the STM read with the previous h), m [1, H], h [1, H], c [1, H] →
 * h_out, c_out [1, H] and probs [1, E] = softmax(W_g h_out + b_g).
 */
export function buildEdgeController(src: WeightSource): Uint8Array {
  const cfg = src.config;
  const { embed: Dc, hidden: H } = cfg.controller;
  const S = cfg.memory.dim;
  const E = cfg.experts.count;
  const g = new GraphBuilder();
  const w = new WeightEmitter(g, src);
  const token = g.input('token', 'int64', [1], 'previous token id');
  const r = g.input(
    'r',
    'float32',
    [1, S],
    'STM read: softmax(W_rq h · keys / √S) · values, zero when empty',
  );
  const m = g.input('m', 'float32', [1, H], 'previous expert mixture');
  const h = g.input('h', 'float32', [1, H], 'LSTM hidden state');
  const c = g.input('c', 'float32', [1, H], 'LSTM cell state');

  const x = g.op('Gather', [w.table('tok_embed'), token], { axis: 0 }); // [1, Dc]
  const seq = g.op('Unsqueeze', [g.op('Concat', [x, r, m], { axis: 1 }), g.ints([0])]); // [1, 1, Dc+S+H]
  const perm = gateRows(H);
  // W and R carry one direction: [1, 4H, in]; per-row scales lie along axis 1.
  const W = w.matrix('lstm.w_ih.iofc', permuteRows(w.dense('lstm.w_ih'), perm), [1, 4 * H, Dc + S + H], 1);
  const R = w.matrix('lstm.w_hh.iofc', permuteRows(w.dense('lstm.w_hh'), perm), [1, 4 * H, H], 1);
  // ONNX adds Wb + Rb; our single bias goes in Wb.
  const ours = w.vectorData('lstm.b');
  const bias = new Float32Array(8 * H);
  perm.forEach((p, i) => (bias[i] = ours[p]));
  const B = g.f32('lstm.b.iofc', bias, [1, 8 * H]);
  const h0 = g.op('Unsqueeze', [h, g.ints([0])]);
  const c0 = g.op('Unsqueeze', [c, g.ints([0])]);
  const [, yh, yc] = g.node('LSTM', [seq, W, R, B, '', h0, c0], { hidden_size: H }, [
    '',
    g.fresh('y_h'),
    g.fresh('y_c'),
  ]);
  const hOut = g.op('Squeeze', [yh, g.ints([0])]); // [1, H]
  const cOut = g.op('Squeeze', [yc, g.ints([0])]);
  const probs = g.op('Softmax', [w.linear(hOut, 'gate.w', 'gate.b')], { axis: -1 });
  g.output(hOut, 'h_out', 'float32', [1, H], 'new LSTM hidden state');
  g.output(cOut, 'c_out', 'float32', [1, H], 'new LSTM cell state');
  g.output(probs, 'probs', 'float32', [1, E], 'gate distribution over experts');
  return g.build({
    graphName: 'edge-controller',
    doc: 'switchyard rru-moe v1 controller: LSTM cell and gate',
  });
}

/** h [1, H], m [1, H] → logits [1, V] = W_o [h; m] + b_o, stm_key [1, S] = W_k h, stm_value [1, S] = W_v m. */
export function buildEdgeHead(src: WeightSource): Uint8Array {
  const cfg = src.config;
  const H = cfg.controller.hidden;
  const S = cfg.memory.dim;
  const g = new GraphBuilder();
  const w = new WeightEmitter(g, src);
  const h = g.input('h', 'float32', [1, H], 'LSTM hidden state of this step');
  const m = g.input('m', 'float32', [1, H], 'expert mixture of this step');
  const logits = w.linear(g.op('Concat', [h, m], { axis: 1 }), 'head.w', 'head.b');
  g.output(logits, 'logits', 'float32', [1, cfg.vocab], 'next-token logits');
  g.output(w.linear(h, 'memory.w_k'), 'stm_key', 'float32', [1, S], 'STM key to append');
  g.output(w.linear(m, 'memory.w_v'), 'stm_value', 'float32', [1, S], 'STM value to append');
  return g.build({ graphName: 'edge-head', doc: 'switchyard rru-moe v1 output head and STM write' });
}
