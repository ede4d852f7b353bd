// The example run the "Load an example run" button posts: a small verl file-logger log (JSON
// lines, one per step) of a GRPO-like run in which two things go wrong, so that findings show
// at once: the entropy collapses after step 40, and at step 90 one update moves the policy far
// (the approximate KL, the clip fraction and the gradient norm spike together). Two timing
// metrics that no library name on the map matches are in it too.

export const EXAMPLE_NAME = "example-verl-run.jsonl";
export const EXAMPLE_STEPS = 120;
export const SPIKE_STEP = 90;

/** A seeded uniform generator in [0, 1) (mulberry32): the same example every time. */
function uniform(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const round = (x) => Number(x.toPrecision(5));

/**
 * The example log as text: one `{"step": N, "data": {...}}` line per step, as verl's file
 * logger writes it (`trainer.logger=['file']`).
 * @returns {string}
 */
export function exampleRunText() {
  const u = uniform(14);
  const noise = (scale) => (u() - 0.5) * 2 * scale;
  const lines = [];
  for (let step = 1; step <= EXAMPLE_STEPS; step += 1) {
    const spike = step === SPIKE_STEP;
    // 1.2 nats early; from step 40 on it decays towards 2 % of that.
    const entropy = step <= 40 ? 1.2 - 0.002 * step : 0.024 + 1.096 * Math.exp(-(step - 40) / 9);
    const data = {
      "actor/pg_loss": -0.02 + noise(0.01),
      "actor/entropy": entropy * (1 + noise(0.03)),
      "actor/pg_clipfrac": spike ? 0.38 : 0.05 + noise(0.01),
      "actor/ppo_kl": spike ? 0.25 : 0.004 + noise(0.001),
      "actor/kl_loss": 0.03 + noise(0.003),
      "actor/grad_norm": spike ? 6.5 : 0.8 + noise(0.1),
      "actor/lr": 1e-6,
      "critic/score/mean": 0.1 + 0.5 * (1 - Math.exp(-step / 30)) + noise(0.03),
      "response_length/mean": 300 + step + noise(15),
      "timing_s/gen": 12 + noise(1),
      "perf/throughput": 1500 + noise(80),
    };
    for (const key of Object.keys(data)) data[key] = round(data[key]);
    lines.push(JSON.stringify({ step, data }));
  }
  return `${lines.join("\n")}\n`;
}
