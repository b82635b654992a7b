// The contracts the tiers implement. shared/ declares them; the reference implements them in float32;
// edge/ (wasm-simd, ort-web), gpu-backend/ and the expert clients implement them for real.

/** Short-term memory: a ring of `slots` (key, value) pairs, each of width S. */
export interface StmState {
  keys: Float32Array; // [slots, S]
  values: Float32Array; // [slots, S]
  count: number; // filled slots, ≤ slots
  next: number; // ring write position
}

/** Everything the edge carries from one step (and one turn) to the next. */
export interface ControllerState {
  h: Float32Array; // [H]
  c: Float32Array; // [H]
  m: Float32Array; // [H] previous mixture
  stm: StmState;
}

/** Sparse code of a vector: the top-a atoms of ReLU(W_code v). */
export interface SparseCode {
  atoms: number[]; // ascending-weight order not guaranteed; length ≤ ltm_active
  weights: number[];
}

/** The edge's per-step compute, split around the expert call. */
export interface EdgeComputeBackend {
  readonly name: string;
  /** STM read with the previous h, LSTM cell on [x; r; m], gate softmax on the new h. */
  controller(state: ControllerState, token: number): Promise<ControllerOutput>;
  /** Output head on [h; m], and the STM key/value to append. */
  head(h: Float32Array, m: Float32Array): Promise<HeadOutput>;
  /** LTM sparse code of h. */
  ltmCode(h: Float32Array): Promise<SparseCode>;
}

export interface ControllerOutput {
  h: Float32Array; // [H]
  c: Float32Array; // [H]
  probs: Float32Array; // [E] gate softmax
}

export interface HeadOutput {
  logits: Float32Array; // [V]
  stmKey: Float32Array; // [S] W_k h
  stmValue: Float32Array; // [S] W_v m
}

/** The prompt as the expert tier sees it: tokens plus their digest (the cache key). */
export interface PromptRef {
  tokens: readonly number[];
  digest: Uint8Array; // 32 bytes, promptDigest(tokens)
}

export interface ExpertCall {
  sessionId: string;
  requestId: string;
  step: number;
  prompt: PromptRef;
  experts: number[]; // routed ids, K of them
  gates: number[]; // renormalized, sum 1
  h: Float32Array; // [H]
  /**
   * Called once every request of this call has been handed to the network (HTTP backends). The edge orders a
   * step's storage write after the next step's call: a Durable Object holds outgoing requests until its
   * writes are durable, so a call made after the write would wait for the flush. Backends that never call it
   * are fine: the caller then waits for the call's result instead.
   */
  onSent?: () => void;
}

export interface ExpertResult {
  mixture: Float32Array; // [H] Σ g_e · Expert_e(h | prompt)
  /** Where a backend can tell: time queued and computing on the expert tier, in microseconds. */
  timing?: { queueUs: number; computeUs: number };
}

/** Runs the routed experts for one step: the GPU tier, a KServe/Triton server, or the reference. */
export interface ExpertBackend {
  readonly name: string;
  runExperts(call: ExpertCall): Promise<ExpertResult>;
  /** Forget a session's prompt caches (end of conversation). */
  dropSession?(sessionId: string): Promise<void>;
}

export interface LtmEntry {
  key: Float32Array; // [S] STM key of the writing request's last step (W_k h_T)
  value: Float32Array; // [S] W_v m_T
  snippet: string;
  score?: number;
}

/** A long-term memory namespace (a MemoryActor at the edge; a Map in tests). */
export interface LtmStore {
  query(code: SparseCode, n: number): Promise<LtmEntry[]>;
  write(code: SparseCode, entry: LtmEntry): Promise<void>;
}
