import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, graphSummary, ONNX_IR_VERSION, ONNX_OPSET, OnnxBuildError } from './graph.ts';
import { createSession, f32, RUNTIMES } from './ort-test-utils.ts';

/** y = x · 2 + b with a float attribute on the way (LeakyRelu's alpha). */
function tinyModel(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['N', 3], 'any rows of 3');
  const y = g.op('Add', [g.op('Mul', [x, g.scalar(2)]), g.f32('b', Float32Array.of(1, -2, 3), [3])]);
  g.output(g.op('LeakyRelu', [y], { alpha: { float: 0.5 } }), 'y', 'float32', ['N', 3], 'result');
  return g.build({ graphName: 'tiny', doc: 'test model' });
}

describe('GraphBuilder', () => {
  it('encodes the declared IR version, opset, interface and docs', () => {
    const s = graphSummary(tinyModel());
    expect(s.irVersion).toBe(ONNX_IR_VERSION);
    expect(s.opset).toBe(ONNX_OPSET);
    expect(s.irVersion).toBeLessThanOrEqual(13);
    expect(s.opset).toBeLessThanOrEqual(26);
    expect(s.name).toBe('tiny');
    expect(s.inputs).toEqual([{ name: 'x', type: 'float32', dims: ['N', 3], doc: 'any rows of 3' }]);
    expect(s.outputs).toEqual([{ name: 'y', type: 'float32', dims: ['N', 3], doc: 'result' }]);
    expect(s.ops).toEqual({ Mul: 1, Add: 1, LeakyRelu: 1, Identity: 1 });
    expect(s.initializers).toBe(2);
    expect(s.initializerBytes).toBe(16);
  });

  it('returns a plain Uint8Array, not a view into a shared pool', () => {
    const b = tinyModel();
    expect(b.constructor).toBe(Uint8Array);
    expect(b.byteOffset).toBe(0);
    expect(b.buffer.byteLength).toBe(b.length);
  });

  it('types attributes: plain numbers as ints, { float } as floats', () => {
    const m = onnxProto.onnx.ModelProto.decode(tinyModel());
    const alpha = m.graph!.node!.find((n) => n.opType === 'LeakyRelu')!.attribute![0];
    expect(alpha.type).toBe(onnxProto.onnx.AttributeProto.AttributeType.FLOAT);
    expect(alpha.f).toBe(0.5);
    const g = new GraphBuilder();
    expect(() => g.op('Softmax', ['x'], { axis: 0.5 })).toThrow(OnnxBuildError);
    expect(() => g.op('Softmax', ['x'], { axis: 0.5 })).toThrow(
      /expected an integer or \{ float \}, found 0.5/,
    );
  });

  it('gives unique value names, shares equal constants and rejects a reused input name', () => {
    const g = new GraphBuilder();
    expect(g.fresh('a')).toBe('a');
    expect(g.fresh('a')).not.toBe('a');
    expect(g.ints([1, 2])).toBe(g.ints([1, 2]));
    expect(g.ints([1], true)).not.toBe(g.ints([1]));
    g.input('x', 'float32', [1]);
    expect(() => g.input('x', 'float32', [1])).toThrow(/value "x": expected a new name, found it in use/);
  });

  it.each(RUNTIMES)('builds models that %s loads and runs', async (runtime) => {
    const s = await createSession(runtime, tinyModel());
    const out = await s.run({ x: f32([0, 0, -4, 1, 1, 1], [2, 3]) });
    // 2x + [1, -2, 3]: row 0 → [1, -2, -5], row 1 → [3, 0, 5]; LeakyRelu halves the negatives.
    expect(Array.from(out.y.data)).toEqual([1, -1, -2.5, 3, 0, 5]);
    await s.release();
  });
});
