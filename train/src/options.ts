// The demo model's config and the training options: kept apart from the training code so that the CLI
// can show its help without loading tfjs.
import { parseConfig, type ModelConfig } from '@switchyard/shared';
import { DEFAULT_RELPOS_TRACE, type RelposTrace, type TaskMix } from './curriculum.ts';

/** The bundled demo model: small enough to train on two CPU cores in about twenty minutes. */
export const DEMO_CONFIG: ModelConfig = parseConfig({
  arch: 'rru-moe',
  version: 1,
  vocab: 260,
  controller: { embed: 64, hidden: 128 },
  memory: { dim: 32, stm_slots: 16, ltm_atoms: 256, ltm_active: 8 },
  experts: { count: 4, top_k: 2, width: 64, layers: 2, heads: 2, ffn: 128, max_prompt: 64 },
  max_think_steps: 15,
});

export interface TrainOptions {
  seed: number;
  /** Examples per supervised step. */
  batch: number;
  /** Supervised steps (the learning-rate schedule spans them). */
  steps: number;
  /**
   * With a time budget: after a few steps, and again every checkpoint until 80% of the way, set `steps`
   * to what the supervised budget allows at the measured speed, so that the schedule ends on time. The
   * checkpoint records the value used.
   */
  autoSteps: boolean;
  /** Fraction of the supervised steps spent in curriculum stage 1 (basic skills) before the mixed stage. */
  stage1: number;
  lr: number;
  warmup: number;
  /** Weight of the load-balancing loss. */
  balance: number;
  /** Prompt-format noise rate of the curriculum (0.1–0.3). */
  noise: number;
  /** PPO iterations after the supervised stage. */
  ppoSteps: number;
  ppoBatch: number;
  ppoLr: number;
  /** Stop (with a checkpoint) once this much wall time has been spent over all runs; 0 = no limit. */
  minutes: number;
  /** Of `minutes`, the part kept for PPO. */
  ppoMinutes: number;
  checkpointEvery: number;
  /** Task weights of the training data (parseMix); default the curriculum's. */
  mix?: TaskMix;
  /**
   * The relpos trace format of the training data; default DEFAULT_RELPOS_TRACE, written into every new checkpoint so that
   * a default changed later cannot change what a resumed run trains on.
   */
  relposTrace?: RelposTrace;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  seed: 1,
  batch: 48,
  steps: 1200,
  autoSteps: false,
  stage1: 0.15,
  lr: 3e-3,
  warmup: 50,
  balance: 0.1,
  noise: 0.2,
  ppoSteps: 60,
  ppoBatch: 64,
  ppoLr: 2e-4,
  minutes: 0,
  ppoMinutes: 0,
  checkpointEvery: 25,
  relposTrace: DEFAULT_RELPOS_TRACE,
};
