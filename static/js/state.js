// The page state lives in the URL query: one short key per control. Defaults are left out so
// links stay short. One history entry per gesture: the first change of a slider drag pushes,
// the rest of the drag replaces, so the back button undoes whole moves.

let gestureOpen = false;

export function params() {
  return new URLSearchParams(window.location.search);
}

function write(query, push) {
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
  const push = gesture ? !gestureOpen : true;
  if (gesture) gestureOpen = true;
  write(query, push);
}

/** Close the current gesture (a slider was released). */
export function endGesture() {
  gestureOpen = false;
}

export function clearAll() {
  write(new URLSearchParams(), true);
}

/** Call `fn(params)` when the back / forward buttons restore an earlier state. */
export function onRestore(fn) {
  window.addEventListener("popstate", () => {
    gestureOpen = false;
    fn(params());
  });
}
