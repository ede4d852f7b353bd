// API client: JSON in and out, errors as ApiError with the server's messages, a memo of GET
// answers (every GET endpoint is a pure function of its query), and a coalescer that keeps at
// most one request in flight per panel (the latest arguments win).

export class ApiError extends Error {
  constructor(status, messages) {
    super(messages.join("; "));
    this.status = status;
    this.messages = messages;
  }
}

/** The URL of a GET call, with undefined / null parameters left out. */
export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function parse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A 2xx whose body does not parse (e.g. cut off mid-response) is an error too: it must not
    // be memoised as an answer.
    if (response.ok) throw new ApiError(response.status, ["the answer was not valid JSON"]);
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail;
    const messages = Array.isArray(detail)
      ? detail.map((d) => d.msg + (d.loc && d.loc.length ? ` (${d.loc.join(".")})` : ""))
      : [typeof detail === "string" ? detail : `HTTP ${response.status}`];
    throw new ApiError(response.status, messages);
  }
  return body;
}

// GET answers by URL, newest last; errors are not kept. Callers must not mutate what they get.
const answers = new Map();
const MAX_ANSWERS = 512;

/** GET `path` with `params`; the same URL asked again (or prefetched) is answered from memory. */
export function getJSON(path, params) {
  // Input waits on this ask: guesses not yet sent give way (the server and the browser's
  // connections serve it first).
  waiting.length = 0;
  return ask(apiUrl(path, params));
}

function ask(url) {
  let answer = answers.get(url);
  if (answer) {
    answers.delete(url); // refresh its place in the eviction order
  } else {
    answer = fetch(url, { headers: { accept: "application/json" } }).then(parse);
    answer.catch(() => {
      if (answers.get(url) === answer) answers.delete(url); // not a newer ask of the same URL
    });
  }
  answers.set(url, answer);
  if (answers.size > MAX_ANSWERS) answers.delete(answers.keys().next().value);
  return answer;
}

// Prefetches: at most PREFETCH_FLIGHTS in flight, the rest wait in `waiting` and are dropped
// when a real ask comes (a jump of a slider would otherwise queue its own request behind
// eight guesses about where it goes next).
const PREFETCH_FLIGHTS = 2;
const waiting = [];
let prefetching = 0;

function nextPrefetch() {
  while (prefetching < PREFETCH_FLIGHTS && waiting.length) {
    const url = waiting.shift();
    if (answers.has(url)) continue;
    prefetching += 1;
    ask(url).catch(() => {}).finally(() => {
      prefetching -= 1;
      nextPrefetch();
    });
  }
}

/** Ask for `path` with `params` ahead of need (e.g. the next slider step); errors are ignored. */
export function prefetch(path, params) {
  const url = apiUrl(path, params);
  if (answers.has(url) || waiting.includes(url)) return;
  waiting.push(url);
  nextPrefetch();
}

export async function postJSON(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  return parse(response);
}

export async function postForm(path, form) {
  const response = await fetch(path, { method: "POST", body: form, headers: { accept: "application/json" } });
  return parse(response);
}

/**
 * Wrap `run(args)` so that at most one call is in flight. Calls made meanwhile replace each
 * other; when the flight lands, the newest waiting arguments go next. No fixed delay: the first
 * call goes at once and a fast server is followed as fast as it answers.
 */
export function coalesce(run, onError) {
  let pending = null;
  let busy = false;
  async function pump() {
    busy = true;
    while (pending !== null) {
      const args = pending;
      pending = null;
      try {
        await run(args);
      } catch (error) {
        onError(error);
      }
    }
    busy = false;
  }
  const schedule = (args) => {
    pending = args;
    if (!busy) pump();
  };
  /** Whether newer arguments wait behind the call in flight. */
  schedule.hasNewer = () => pending !== null;
  return schedule;
}
