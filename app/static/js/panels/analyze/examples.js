// The two batches the Load buttons fill the JSON box with, and how they are written there.

// A small RLHF-like batch: 4 responses of 8, 6, 5 and 3 tokens (padding masked out), with the
// inference engine's log-probs a little off the trainer's. Nothing in it crosses a threshold.
export const EXAMPLE = {
  logprobs: [
    [-1.348, -1.53, -0.849, -0.698, -0.887, -0.373, -1.33, -2.155],
    [-0.839, -0.756, -1.727, -1.438, -1.07, -0.781, 0, 0],
    [-0.355, -0.58, -0.017, -0.477, -0.078, 0, 0, 0],
    [-1.32, -0.969, -0.346, 0, 0, 0, 0, 0],
  ],
  old_logprobs: [
    [-1.201, -1.409, -1.008, -0.577, -0.882, -0.506, -1.242, -2.138],
    [-0.855, -0.766, -1.543, -1.45, -1.274, -0.549, 0, 0],
    [-0.259, -0.88, -0.131, -0.297, -0.089, 0, 0, 0],
    [-1.31, -1.069, -0.562, 0, 0, 0, 0, 0],
  ],
  rollout_logprobs: [
    [-1.199, -1.327, -0.935, -0.608, -0.9, -0.538, -1.208, -2.141],
    [-0.81, -0.877, -1.449, -1.456, -1.233, -0.557, 0, 0],
    [-0.21, -0.892, -0.14, -0.256, -0.141, 0, 0, 0],
    [-1.425, -1.118, -0.59, 0, 0, 0, 0, 0],
  ],
  advantages: [
    [-0.579, -0.196, 0.899, 1.145, -1.324, -0.795, 0.647, -1.992],
    [-0.463, -0.097, 1.257, 0.689, -0.327, -0.369, 0, 0],
    [-0.428, -0.304, 0.353, -0.121, -0.197, 0, 0, 0],
    [1.166, 0.653, -0.024, 0, 0, 0, 0, 0],
  ],
  values: [
    [-0.345, 0.473, -0.544, -0.718, 0.148, -0.15, 0.382, 1.422],
    [-0.116, -0.012, 0.403, 0.547, 0.212, 0.197, 0, 0],
    [-0.217, 0.26, 0.318, -0.227, 0.43, 0, 0, 0],
    [0.345, 0.004, 0.241, 0, 0, 0, 0, 0],
  ],
  returns: [
    [-1.044, 0.776, -0.882, -0.406, 0.2, -0.765, 0.882, 1.999],
    [-0.142, -0.122, 0.339, 0.156, 0.651, -0.02, 0, 0],
    [-0.467, -0.251, 0.82, -0.289, 0.816, 0, 0, 0],
    [0.121, 0.008, 0.091, 0, 0, 0, 0, 0],
  ],
  old_values: [
    [-0.398, 0.49, -0.474, -0.79, 0.137, -0.182, 0.294, 1.459],
    [-0.117, -0.008, 0.365, 0.569, 0.185, 0.19, 0, 0],
    [-0.15, 0.235, 0.332, -0.229, 0.408, 0, 0, 0],
    [0.337, 0.006, 0.3, 0, 0, 0, 0, 0],
  ],
  mask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0],
  ],
  bins: 10,
};

// What goes wrong in real runs, in one batch: the first update (first_epoch) with ratios off 1
// (the two forward passes disagree), one token whose log-ratio is -23.5 (stale old_logprobs), an
// inference engine far from the trainer, and a GRPO group whose answers all scored the same.
export const BROKEN = {
  logprobs: [
    [-0.604, -0.375, -1.002, -1.258, -1.699, -1.218, -0.697, -0.741],
    [-1.234, -1.731, -1.376, -0.35, -24.021, -1.796, -1.096, 0],
    [-0.986, -0.449, -0.57, -0.898, -0.554, 0, 0, 0],
    [-1.031, -1.347, -0.005, 0, 0, 0, 0, 0],
  ],
  old_logprobs: [
    [-0.599, -0.338, -0.876, -1.21, -1.568, -1.055, -0.724, -0.608],
    [-1.374, -1.817, -1.136, -0.383, -0.521, -1.8, -1.101, 0],
    [-0.958, -0.418, -0.685, -0.756, -0.643, 0, 0, 0],
    [-1.205, -1.415, -0.178, 0, 0, 0, 0, 0],
  ],
  rollout_logprobs: [
    [-0.005, -1.438, -0.782, -1.221, -1.263, -1.237, -0.8, -0.487],
    [-1.322, -2.249, -0.688, -1.032, -1.122, -2.441, -0.618, 0],
    [-1.444, -0.986, -0.474, -1.283, -1.279, 0, 0, 0],
    [-1.208, -1.638, -0.205, 0, 0, 0, 0, 0],
  ],
  mask: [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0],
  ],
  scores: [1, 1, 0, 1],
  group_ids: [0, 0, 1, 1],
  first_epoch: true,
  micro_batches: 2,
  bins: 20,
};

/**
 * A batch as JSON with one row of each 2-D field per line: readable, and still valid JSON.
 * @param {Record<string, unknown>} batch
 * @returns {string}
 */
export function formatExample(batch) {
  const lines = Object.entries(batch).map(([key, value]) => {
    if (!Array.isArray(value) || !Array.isArray(value[0])) return `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`;
    const rows = value.map((row) => `    [${row.join(", ")}]`).join(",\n");
    return `  ${JSON.stringify(key)}: [\n${rows}\n  ]`;
  });
  return `{\n${lines.join(",\n")}\n}`;
}
