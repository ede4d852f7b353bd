// The page state lives in the URL query: one short key per control. Defaults are left out so
// links stay short. One history entry per gesture: the first change of a slider drag pushes,
// the rest of the drag replaces, so the back button undoes whole moves.
//
// During a drag the address bar is written at most every WRITE_DELAY_MS (and at once when the
// drag ends): each history write costs the browser a few milliseconds on the path of the
// chart's own request, and Chromium ignores history writes past about 200 in 10 s.

const WRITE_DELAY_MS = 150;

/**
 * Keys of knobs that each panel used to hold on its own, now one shared state (issue 12):
 * old key -> shared key. An old link still works: on load its value moves to the shared key
 * (the shared key wins when both are present; among old keys, the first listed).
 */
export const LEGACY_KEYS = { tClip: "eps", lClip: "eps", tVf: "vf", tEnt: "ent", lEnt: "ent" };

/** Rewrite old per-panel keys in the address bar to their shared key (no history entry). */
function migrateLegacyKeys() {
  const query = new URLSearchParams(window.location.search);
  let changed = false;
  for (const [old, key] of Object.entries(LEGACY_KEYS)) {
    if (!query.has(old)) continue;
    if (!query.has(key)) query.set(key, query.get(old));
    query.delete(old);
    changed = true;
  }
  if (!changed) return;
  const text = query.toString();
  const url = `${window.location.pathname}${text ? `?${text}` : ""}${window.location.hash}`;
  window.history.replaceState(window.history.state, "", url);
}

migrateLegacyKeys();

let gestureOpen = false;
/** The newest state not yet in the address bar: { query, push }. */
let pending = null;
let timer = 0;

export function params() {
  return new URLSearchParams(pending ? pending.query : window.location.search);
}

/** Write any pending state to the address bar now. */
export function flush() {
  if (timer) clearTimeout(timer);
  timer = 0;
  if (!pending) return;
  const { query, push } = pending;
  pending = null;
  const text = query.toString();
  const url = `${window.location.pathname}${text ? `?${text}` : ""}${window.location.hash}`;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

/** Set keys (null removes one). `gesture: true` groups a drag into one history entry. */
export function update(changes, { gesture = false } = {}) {
  const query = params();
  let changed = false;
  for (const [key, value] of Object.entries(changes)) {
    const old = query.get(key);
    if (value === null || value === undefined) {
      if (old !== null) { query.delete(key); changed = true; }
    } else if (old !== String(value)) {
      query.set(key, String(value));
      changed = true;
    }
  }
  if (!changed) return;
  if (!gesture) {
    // A click or a typed value: its own history entry, written at once.
    flush();
    pending = { query, push: true };
    flush();
    return;
  }
  // The first write of a gesture pushes; it stays a push until it reaches the address bar.
  const push = !gestureOpen || (pending !== null && pending.push);
  gestureOpen = true;
  pending = { query, push };
  if (!timer) timer = setTimeout(flush, WRITE_DELAY_MS);
}

/** Close the current gesture (a slider was released). */
export function endGesture() {
  flush();
  gestureOpen = false;
}

export function clearAll() {
  flush(); // a drag in progress keeps its own history entry
  gestureOpen = false;
  pending = { query: new URLSearchParams(), push: true };
  flush();
}

/** Call `fn(params)` when the back / forward buttons restore an earlier state. */
export function onRestore(fn) {
  window.addEventListener("popstate", () => {
    // The browser has moved to another entry: a pending write is stale.
    if (timer) clearTimeout(timer);
    timer = 0;
    pending = null;
    gestureOpen = false;
    migrateLegacyKeys();
    fn(params());
  });
}

// Leaving or hiding the page mid-drag keeps the latest state in the address bar.
window.addEventListener("pagehide", flush);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flush();
});
