// What the inspector's parts share: building elements, formatting numbers, empty tables.

/**
 * The first element under `root` that matches `selector`.
 * @param {ParentNode} root
 * @param {string} selector
 * @returns {HTMLElement}
 */
export const $ = (root, selector) => root.querySelector(selector);

/**
 * A new element: `class`, `data-*`, `scope` and `href` become attributes, other props are set
 * as properties; null and undefined children are skipped.
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElement}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "scope" || key === "href") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/**
 * A value for a table cell: "—" when missing, yes / no, five significant decimals, exponent
 * form for the very small and very large.
 * @param {unknown} x
 * @returns {string}
 */
export function fmt(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x === "boolean") return x ? "yes" : "no";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(3);
  return String(Math.round(x * 1e5) / 1e5);
}

/** @param {number} x a share in [0, 1] @returns {string} a percentage, one decimal */
export const pct = (x) => `${(100 * x).toFixed(1)}%`;

/**
 * A table before any batch: its caption and one "No batch analyzed yet." cell.
 * @param {HTMLTableElement} table
 * @param {string} caption
 */
export function emptyTable(table, caption) {
  table.replaceChildren(el("caption", {}, caption), el("tbody", {}, el("tr", {}, el("td", {}, "No batch analyzed yet."))));
}

/**
 * A table head of one row of column headers.
 * @param {...string} labels
 * @returns {HTMLElement}
 */
export const tableHead = (...labels) => el("thead", {}, el("tr", {}, ...labels.map((t) => el("th", { scope: "col" }, t))));

/**
 * A row header naming a quantity twice: its label, and its key in the API's answer.
 * @param {string} label
 * @param {string} key
 * @returns {HTMLElement}
 */
export const keyHeader = (label, key) => el("th", { scope: "row" }, label, el("br"), el("code", { class: "key" }, key));

/** Wire a drop zone: highlighted while files are dragged over it; `onFiles(files)` on a drop. */
export function bindDropZone(drop, onFiles) {
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const files = event.dataTransfer ? event.dataTransfer.files : [];
    if (files.length) onFiles(files);
  });
}
