// The region map in plain SVG: shipped GeoJSON outlines (no tile server), markers in screen pixels,
// zoom with the wheel or the +/- buttons, pan by dragging.

import { setStyle } from "./gql.js";

const SVG = "http://www.w3.org/2000/svg";
const SCALE = 1000; // map units per degree of latitude

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") setStyle(node, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class RegionMap {
  /** `region`: the FeatureCollection of /region.geojson. */
  constructor(container, region) {
    this.region = region;
    const outline = region.features.find((f) => f.properties.kind === "outline");
    const ring = outline.geometry.type === "Polygon" ? outline.geometry.coordinates[0] : outline.geometry.coordinates[0][0];
    const lats = ring.map((p) => p[1]);
    this.lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
    this.kx = Math.cos((this.lat0 * Math.PI) / 180) * SCALE;
    const xs = ring.map((p) => this.x(p[0]));
    const ys = ring.map((p) => this.y(p[1]));
    const pad = 12;
    this.home = { x: Math.min(...xs) - pad, y: Math.min(...ys) - pad,
                  w: Math.max(...xs) - Math.min(...xs) + 2 * pad, h: Math.max(...ys) - Math.min(...ys) + 2 * pad };
    this.view = { ...this.home };
    this.root = svg("svg", { class: "map", role: "img", "aria-label": `map of ${region.name.en}`,
                             preserveAspectRatio: "xMidYMid meet" });
    this.base = svg("g", { class: "base" });
    this.overlay = svg("g", { class: "overlay" });
    this.root.append(this.base, this.overlay);
    container.append(this.root);
    this.drawBase();
    this.applyView();
    this.enableZoomPan();
    this.onViewChange = () => {};
  }

  x(lng) { return lng * this.kx; }
  y(lat) { return -lat * SCALE; }
  xy(point) { return [this.x(point.lng), this.y(point.lat)]; }

  /** Map units per screen pixel at the current zoom: markers keep their pixel size. */
  unit() {
    const box = this.root.getBoundingClientRect();
    if (!box.width || !box.height) return this.view.w / 800;
    return Math.max(this.view.w / box.width, this.view.h / box.height);
  }

  ringPath(ring) {
    return ring.map((p, i) => `${i ? "L" : "M"}${this.x(p[0]).toFixed(2)},${this.y(p[1]).toFixed(2)}`).join("") + "Z";
  }

  geometryPath(geometry) {
    const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    return polygons.map((polygon) => polygon.map((ring) => this.ringPath(ring)).join("")).join("");
  }

  drawBase() {
    const layers = { outline: svg("g"), area: svg("g"), branch: svg("g"), labels: svg("g", { class: "labels" }) };
    for (const feature of this.region.features) {
      const p = feature.properties;
      if (p.kind === "outline" || p.kind === "area" || p.kind === "branch") {
        const cls = p.kind === "area" ? `area area-${String(p.area_type).toLowerCase()}` : p.kind;
        layers[p.kind].append(svg("path", { class: cls, d: this.geometryPath(feature.geometry),
                                            "fill-rule": "evenodd" },
                                  svg("title", {}, `${p.name}${p.name_zh ? ` · ${p.name_zh}` : ""}`)));
      } else if (p.kind === "centre" || p.kind === "depot") {
        const [lng, lat] = feature.geometry.coordinates;
        if (p.kind === "centre") {
          layers.area.append(svg("circle", { class: "urban", cx: this.x(lng), cy: this.y(lat),
                                             r: p.radius_km / 111.32 * SCALE }));
        }
        if (p.kind === "depot") {
          // the depot's house always; its name once zoomed in (names of a whole region overlap)
          layers.labels.append(svg("text", { class: "label label-depot-glyph", x: this.x(lng), y: this.y(lat) },
                                   "⌂", svg("title", {}, `${p.name}${p.name_zh ? ` · ${p.name_zh}` : ""}`)));
          layers.labels.append(svg("text", { class: "label label-depot", x: this.x(lng), y: this.y(lat), dy: "1.2em" },
                                   p.name));
        } else {
          layers.labels.append(svg("text", { class: "label label-centre", x: this.x(lng), y: this.y(lat) }, p.name));
        }
      }
    }
    // areas and branch lines are drawn inside the region's outline only
    const clip = svg("clipPath", { id: "region-clip" },
                     svg("path", { d: this.geometryPath(this.region.features.find((f) => f.properties.kind === "outline").geometry) }));
    layers.area.setAttribute("clip-path", "url(#region-clip)");
    layers.branch.setAttribute("clip-path", "url(#region-clip)");
    this.base.append(svg("defs", {}, clip), layers.outline, layers.area, layers.branch, layers.labels);
  }

  applyView() {
    const v = this.view;
    this.root.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
    const u = this.unit();
    this.root.style.setProperty("--u", u);
    this.root.classList.toggle("zoomed", v.w < this.home.w / 1.8);
    for (const label of this.base.querySelectorAll(".label")) label.setAttribute("font-size", 12 * u);
  }

  zoom(factor, cx = this.view.x + this.view.w / 2, cy = this.view.y + this.view.h / 2) {
    const v = this.view;
    const w = Math.min(this.home.w * 1.5, Math.max(this.home.w / 40, v.w * factor));
    const k = w / v.w;
    this.view = { x: cx - (cx - v.x) * k, y: cy - (cy - v.y) * k, w, h: v.h * k };
    this.applyView();
    this.onViewChange();
  }

  reset() {
    this.view = { ...this.home };
    this.applyView();
    this.onViewChange();
  }

  toMap(clientX, clientY) {
    const point = this.root.createSVGPoint();
    point.x = clientX;
    point.y = clientY;
    const local = point.matrixTransform(this.root.getScreenCTM().inverse());
    return [local.x, local.y];
  }

  enableZoomPan() {
    this.root.addEventListener("wheel", (event) => {
      event.preventDefault();
      const [cx, cy] = this.toMap(event.clientX, event.clientY);
      this.zoom(event.deltaY > 0 ? 1.25 : 0.8, cx, cy);
    }, { passive: false });
    let drag = null;
    let dragged = false;
    // a drag is not a click on whatever marker it ended on
    this.root.addEventListener("click", (event) => {
      if (dragged) event.stopPropagation();
      dragged = false;
    }, { capture: true });
    this.root.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      dragged = false;
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view }, moved: false };
    });
    window.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      drag.moved = true;
      const u = this.unit();
      this.view = { ...drag.view, x: drag.view.x - dx * u, y: drag.view.y - dy * u };
      this.applyView();
    });
    window.addEventListener("pointerup", () => {
      dragged = Boolean(drag && drag.moved);
      drag = null;
    });
    window.addEventListener("resize", () => this.applyView());
  }

  /** Replaces everything drawn over the region (tickets, crews, routes, generators). */
  setOverlay(nodes) {
    this.overlay.replaceChildren(...nodes);
  }
}
