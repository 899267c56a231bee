// The dispatcher board: the region map with tickets, crews, routes and generators, the unassigned and overdue
// lists, optimise (propose, review the reasons, commit) and assign/pin by hand; live through `dispatchBoard`.

import { el, gql, GraphQLFailure, payloadFailure, subscribe } from "./gql.js";
import { RegionMap, svg } from "./map.js";

const OPEN = ["NEW", "ASSIGNED", "EN_ROUTE", "ON_SITE", "ON_HOLD"];
const ASSIGNABLE = new Set(["NEW", "ASSIGNED", "ON_HOLD"]);
const FIELD_KINDS = new Set(["FAULT_REPAIR", "EMERGENCY"]);
const RANK = { EMERGENCY: 0, CRITICAL: 1, HIGH: 2, NORMAL: 3, LOW: 4 };
const STATUS_LABEL = { NEW: "new", ASSIGNED: "assigned", EN_ROUTE: "en route", ON_SITE: "on site",
                       ON_HOLD: "on hold", RESOLVED: "resolved", CLOSED: "closed", CANCELLED: "cancelled" };
const TOKEN_KEY = "gridcrew.board.token";
const FLEET_REFRESH_MS = 30000;
const FULL_RELOAD_MS = 120000;

const TICKET = `fragment BoardTicket on Ticket {
  id number kind priority status summary address branch areaType customersAffected needsGenerator criticalLoadKw
  requiredSkills createdAt respondBy overdue eta etr location { lat lng } duplicateOf { id number }
  assignment { sequence plannedArrival plannedFinish pinned reason crew { id name } generator { id name } }
}`;
const TICKETS = `query BoardTickets($after: String) {
  tickets(status: [NEW, ASSIGNED, EN_ROUTE, ON_SITE, ON_HOLD], first: 200, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { ...BoardTicket } }
  }
} ${TICKET}`;
const FLEET = `query BoardFleet {
  crews { id name skills status canTowGenerator branch home { lat lng } location { lat lng } lastSeenAt
          shiftStart shiftEnd }
  mobileGenerators { id name capacityKw status location { lat lng } assignedTicket { id number } }
  dispatchPlan { id status createdAt trigger lateTickets totalTravelMinutes }
}`;
const PLAN = `fragment BoardPlan on DispatchPlan {
  id status createdAt solveSeconds lateTickets totalTravelMinutes
  assignments { sequence plannedArrival plannedFinish pinned reason generator { id name }
                crew { id name } ticket { id number priority status summary respondBy location { lat lng } } }
  unassigned { reason ticket { id number priority status summary } }
}`;
const OPTIMISE = `mutation BoardOptimise($input: OptimizeDispatchInput!) {
  optimizeDispatch(input: $input) { plan { ...BoardPlan } errors { field message code } }
} ${PLAN}`;
const COMMIT = `mutation BoardCommit($input: CommitDispatchPlanInput!) {
  commitDispatchPlan(input: $input) { plan { id status lateTickets } errors { field message code } }
}`;
const ASSIGN = `mutation BoardAssign($input: AssignTicketInput!) {
  assignTicket(input: $input) {
    assignment { sequence plannedArrival pinned crew { id name } ticket { ...BoardTicket } }
    warnings errors { field message code }
  }
} ${TICKET}`;
const LIVE = `subscription BoardLive { dispatchBoard { ...BoardTicket } } ${TICKET}`;

const state = {
  token: null,
  tickets: new Map(),
  crews: [],
  generators: [],
  latestPlan: null,
  selected: null, // { type: "ticket" | "crew", id }
  proposal: null,
  feed: [],
  subscription: null,
  liveState: "connecting",
  dropped: false,
  timers: [],
};
let map = null;
let renderQueued = false;
let fleetTimer = null;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ formatting

function time(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const today = new Date().toDateString() === at.toDateString();
  return at.toLocaleString(undefined, today ? { hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function minutesFromNow(iso) {
  return Math.round((new Date(iso).getTime() - Date.now()) / 60000);
}

function duration(minutes) {
  if (minutes < 120) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return `${Math.floor(minutes / 1440)} days`;
}

function due(ticket) {
  if (!ticket.respondBy) return "";
  const minutes = minutesFromNow(ticket.respondBy);
  return minutes >= 0 ? `due in ${duration(minutes)}` : `${duration(-minutes)} late`;
}

/** "DispatchPlan:12" inside a global id, shown as "12"; any other id as it is. */
function shortId(id) {
  try {
    const [type, raw] = atob(id).split(":");
    return type && raw ? raw : id;
  } catch {
    return id;
  }
}

function crewColour(crewId) {
  const index = state.crews.findIndex((c) => c.id === crewId);
  const hue = ((index < 0 ? 0 : index) * 137.508) % 360;
  return `hsl(${hue.toFixed(0)} 70% 38%)`;
}

function chip(text, cls) {
  return el("span", { class: `chip ${cls}` }, text);
}

function toast(message, kind = "info") {
  const box = $("toast");
  box.replaceChildren(el("div", { class: `toast-item ${kind}` }, message));
  box.dataset.kind = kind;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.replaceChildren(), kind === "error" ? 12000 : 5000);
}

function failureText(error) {
  return error instanceof GraphQLFailure ? error.errors.map((e) => e.message).join("; ") : String(error);
}

// ------------------------------------------------------------------ derived views

function isOpen(ticket) {
  return OPEN.includes(ticket.status);
}

function unassigned() {
  return [...state.tickets.values()]
    .filter((t) => !t.assignment && !t.duplicateOf && FIELD_KINDS.has(t.kind) && (t.status === "NEW" || t.status === "ON_HOLD"))
    .sort((a, b) => RANK[a.priority] - RANK[b.priority] || String(a.respondBy).localeCompare(String(b.respondBy)));
}

function overdue() {
  // field work first (a crew can still do something about it), then the longest late
  return [...state.tickets.values()].filter((t) => t.overdue)
    .sort((a, b) => FIELD_KINDS.has(b.kind) - FIELD_KINDS.has(a.kind) ||
                    String(a.respondBy).localeCompare(String(b.respondBy)));
}

function routeOf(crewId) {
  return [...state.tickets.values()]
    .filter((t) => t.assignment && t.assignment.crew.id === crewId && isOpen(t))
    .sort((a, b) => a.assignment.sequence - b.assignment.sequence);
}

// ------------------------------------------------------------------ map

function ticketMarker(ticket, u, dim) {
  const [x, y] = map.xy(ticket.location);
  const r = (ticket.priority === "EMERGENCY" || ticket.priority === "CRITICAL" ? 6.5 : 5) * u;
  const selected = state.selected?.type === "ticket" && state.selected.id === ticket.id;
  const cls = ["ticket", `p-${ticket.priority}`, `s-${ticket.status}`, ticket.assignment ? "assigned" : "unassigned",
               ticket.overdue ? "is-overdue" : "", selected ? "selected" : "", dim ? "dim" : ""].join(" ");
  // complaints, inquiries, ...: handled in the office, shown faintly (no crew goes there)
  const office = !FIELD_KINDS.has(ticket.kind);
  const group = svg("g", { class: `ticket-group${office ? " office" : ""}`, onclick: () => select("ticket", ticket.id) });
  if (ticket.overdue) group.append(svg("circle", { class: "halo", cx: x, cy: y, r: r + 3.5 * u }));
  group.append(svg("circle", {
    class: cls, cx: x, cy: y, r,
    dataset: { number: ticket.number, status: ticket.status, priority: ticket.priority, id: ticket.id },
  }, svg("title", {}, `${ticket.number} · ${ticket.kind.toLowerCase().replace("_", " ")} · ${ticket.priority.toLowerCase()} · ` +
                    `${STATUS_LABEL[ticket.status]}${ticket.overdue ? " · overdue" : ""}\n${ticket.summary}`)));
  if (ticket.status === "ON_SITE") group.append(svg("circle", { class: "onsite-dot", cx: x, cy: y, r: r * 0.35 }));
  return group;
}

/** A crew's GPS position once its device has reported one; before that its home base. */
function hasGps(crew) {
  return Boolean(crew.lastSeenAt && crew.location);
}

function crewMarker(crew, u, dim) {
  const at = hasGps(crew) ? crew.location : crew.home;
  const [x, y] = map.xy(at);
  const s = 6 * u;
  const selected = state.selected?.type === "crew" && state.selected.id === crew.id;
  const group = svg("g", { class: `crew-group${dim ? " dim" : ""}`, onclick: () => select("crew", crew.id) });
  group.append(svg("rect", {
    class: `crew ${hasGps(crew) ? "gps" : "home"} c-${crew.status}${selected ? " selected" : ""}`,
    x: x - s, y: y - s, width: 2 * s, height: 2 * s, rx: 1.5 * u, style: { "--crew": crewColour(crew.id) },
    dataset: { crew: crew.name, id: crew.id, status: crew.status },
  }, svg("title", {}, `${crew.name} · ${crew.status}${hasGps(crew) ? ` · GPS ${time(crew.lastSeenAt)}` : " · home base (no GPS yet)"}`)));
  if (selected || map.unit() < map.home.w / 2500) {
    group.append(svg("text", { class: "crew-label", x: x + s * 1.4, y: y + s * 0.5, "font-size": 11 * u }, crew.name));
  }
  return group;
}

function generatorMarker(generator, u) {
  const [x, y] = map.xy(generator.location);
  const s = 6.5 * u;
  return svg("path", {
    class: `generator g-${generator.status}`,
    d: `M${x},${y - s}L${x + s},${y + s * 0.8}L${x - s},${y + s * 0.8}Z`,
    dataset: { generator: generator.name, status: generator.status },
  }, svg("title", {}, `${generator.name} · ${generator.capacityKw} kW · ${generator.status}` +
    (generator.assignedTicket ? ` · for ${generator.assignedTicket.number}` : "")));
}

function routeLine(points, colour, cls) {
  if (points.length < 2) return null;
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(2)},${y.toFixed(2)}`).join("");
  return svg("path", { class: cls, d, style: { "--crew": colour } });
}

function drawMap() {
  if (!map) return;
  const u = map.unit();
  const focusCrew = state.selected?.type === "crew" ? state.selected.id : null;
  const routes = [];
  const nodes = [];
  for (const crew of state.crews) {
    const start = map.xy(hasGps(crew) ? crew.location : crew.home);
    const stops = routeOf(crew.id).filter((t) => t.location).map((t) => map.xy(t.location));
    const line = routeLine([start, ...stops], crewColour(crew.id),
                           `route${focusCrew && focusCrew !== crew.id ? " dim" : ""}${focusCrew === crew.id ? " focus" : ""}`);
    if (line) {
      line.dataset.crew = crew.name;
      routes.push(line);
    }
  }
  if (state.proposal) {
    const byCrew = new Map();
    for (const a of state.proposal.assignments) {
      if (!a.ticket.location) continue;
      if (!byCrew.has(a.crew.id)) byCrew.set(a.crew.id, []);
      byCrew.get(a.crew.id).push(a);
    }
    for (const [crewId, list] of byCrew) {
      const crew = state.crews.find((c) => c.id === crewId);
      if (!crew) continue;
      list.sort((a, b) => a.sequence - b.sequence);
      const line = routeLine([map.xy(hasGps(crew) ? crew.location : crew.home), ...list.map((a) => map.xy(a.ticket.location))],
                             crewColour(crewId), "route proposed");
      if (line) routes.push(line);
    }
  }
  nodes.push(svg("g", { class: "routes" }, routes));
  nodes.push(svg("g", { class: "generators" }, state.generators.map((g) => generatorMarker(g, u))));
  const tickets = [...state.tickets.values()].filter((t) => t.location && !t.duplicateOf && isOpen(t))
    .sort((a, b) => RANK[b.priority] - RANK[a.priority]); // emergencies drawn last, on top
  nodes.push(svg("g", { class: "tickets" }, tickets.map((t) => ticketMarker(
    t, u, Boolean(focusCrew) && t.assignment?.crew.id !== focusCrew))));
  nodes.push(svg("g", { class: "crews" }, state.crews.map((c) => crewMarker(c, u, Boolean(focusCrew) && focusCrew !== c.id))));
  map.setOverlay(nodes);
}

// ------------------------------------------------------------------ side panel

function ticketItem(ticket) {
  return el("li", {},
    el("button", { type: "button", class: "ticket-item", dataset: { number: ticket.number },
                   onclick: () => select("ticket", ticket.id) },
      chip(ticket.priority.toLowerCase(), `p-${ticket.priority}`),
      el("strong", {}, ticket.number),
      el("span", { class: "summary" }, ticket.summary),
      el("span", { class: "meta" }, `${STATUS_LABEL[ticket.status]}${ticket.respondBy ? ` · ${due(ticket)}` : ""}` +
        (ticket.assignment ? ` · ${ticket.assignment.crew.name}` : ""))));
}

function drawLists() {
  const open = [...state.tickets.values()].filter(isOpen);
  const waiting = unassigned();
  const late = overdue();
  $("unassigned-count").textContent = waiting.length;
  $("overdue-count").textContent = late.length;
  $("unassigned").replaceChildren(...waiting.slice(0, 100).map(ticketItem),
    waiting.length > 100 ? el("li", { class: "muted" }, `… and ${waiting.length - 100} more`) : "");
  $("overdue").replaceChildren(...late.slice(0, 100).map(ticketItem),
    late.length > 100 ? el("li", { class: "muted" }, `… and ${late.length - 100} more`) : "");
  const onShift = state.crews.filter((c) => c.status !== "OFF_SHIFT" && c.status !== "UNAVAILABLE");
  $("crew-count").textContent = `${onShift.length}/${state.crews.length}`;
  $("crews").replaceChildren(...state.crews.map((crew) => el("li", {},
    el("button", { type: "button", class: "crew-item", dataset: { crew: crew.name }, onclick: () => select("crew", crew.id) },
      el("i", { class: "swatch", style: { background: crewColour(crew.id) } }),
      el("strong", {}, crew.name),
      el("span", { class: "meta" }, `${crew.status.toLowerCase().replace("_", " ")} · ${routeOf(crew.id).length} jobs` +
        (crew.lastSeenAt ? ` · seen ${time(crew.lastSeenAt)}` : ""))))));
  $("counts").replaceChildren(
    el("span", {}, el("b", { id: "count-open" }, open.length), " open"),
    el("span", {}, el("b", {}, waiting.length), " unassigned"),
    el("span", { class: late.length ? "warn" : "" }, el("b", {}, late.length), " overdue"),
    el("span", {}, el("b", {}, onShift.length), " crews on shift"),
    state.latestPlan ? el("span", { class: "muted" }, `plan ${shortId(state.latestPlan.id)} ${state.latestPlan.status.toLowerCase()}`) : "",
  );
  $("feed").replaceChildren(...state.feed.map((line) => el("li", {}, el("time", {}, line.at), " ", line.text)));
}

function fact(label, value) {
  return [el("dt", {}, label), el("dd", {}, value ?? "—")];
}

function drawDetail() {
  const box = $("detail");
  const sel = state.selected;
  if (!sel) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  if (sel.type === "crew") {
    const crew = state.crews.find((c) => c.id === sel.id);
    if (!crew) return clearSelection();
    const route = routeOf(crew.id);
    box.replaceChildren(
      el("header", {}, el("h2", {}, el("i", { class: "swatch", style: { background: crewColour(crew.id) } }), crew.name),
         el("button", { type: "button", class: "ghost close", "aria-label": "close", onclick: clearSelection }, "×")),
      el("dl", {},
        fact("status", crew.status.toLowerCase().replace("_", " ")),
        fact("skills", crew.skills.join(", ")),
        fact("shift", `${time(crew.shiftStart)} – ${time(crew.shiftEnd)}`),
        fact("last GPS", hasGps(crew) ? `${crew.location.lat.toFixed(4)}, ${crew.location.lng.toFixed(4)} at ${time(crew.lastSeenAt)}`
          : "none yet (home base shown)"),
        fact("tows generators", crew.canTowGenerator ? "yes" : "no")),
      el("h3", {}, `Route (${route.length})`),
      el("ol", { class: "route-list" }, route.map((t) => el("li", {},
        el("button", { type: "button", class: "link", onclick: () => select("ticket", t.id) }, t.number),
        ` ${STATUS_LABEL[t.status]} · ETA ${time(t.assignment.plannedArrival)}${t.assignment.pinned ? " · pinned" : ""}`,
        t.assignment.reason ? el("div", { class: "reason" }, t.assignment.reason) : ""))),
    );
    return;
  }
  const ticket = state.tickets.get(sel.id);
  if (!ticket) return clearSelection();
  const a = ticket.assignment;
  const children = [
    el("header", {}, el("h2", {}, ticket.number),
       el("button", { type: "button", class: "ghost close", "aria-label": "close", onclick: clearSelection }, "×")),
    el("p", {}, chip(ticket.priority.toLowerCase(), `p-${ticket.priority}`), " ",
      chip(STATUS_LABEL[ticket.status], `s-${ticket.status}`), ticket.overdue ? chip("overdue", "warn") : ""),
    el("p", { class: "summary" }, ticket.summary),
    el("dl", {},
      fact("address", ticket.address),
      fact("area", `${ticket.areaType.toLowerCase()}${ticket.branch ? ` · ${ticket.branch}` : ""}`),
      fact("customers", ticket.customersAffected),
      fact("skills", ticket.requiredSkills.join(", ") || "any"),
      ticket.needsGenerator ? fact("generator", `needed${ticket.criticalLoadKw ? `, ${ticket.criticalLoadKw} kW` : ""}`) : [],
      fact("reported", time(ticket.createdAt)),
      fact("respond by", ticket.respondBy ? `${time(ticket.respondBy)} (${due(ticket)})` : "—"),
      fact("ETA", time(ticket.eta)),
      fact("ETR", time(ticket.etr)),
      fact("crew", a ? `${a.crew.name}, stop ${a.sequence + 1}${a.pinned ? ", pinned" : ""}` : "none"),
      a?.generator ? fact("with", a.generator.name) : [],
      a?.reason ? fact("why", a.reason) : []),
  ];
  if (ASSIGNABLE.has(ticket.status)) children.push(assignForm(ticket));
  box.replaceChildren(...children);
}

function assignForm(ticket) {
  const missing = (crew) => ticket.requiredSkills.filter((s) => !crew.skills.includes(s));
  const crews = [...state.crews].sort((x, y) => missing(x).length - missing(y).length || x.name.localeCompare(y.name));
  const crewSelect = el("select", { id: "assign-crew", name: "crew", required: true },
    el("option", { value: "" }, "choose a crew…"),
    crews.map((crew) => el("option", { value: crew.id, selected: ticket.assignment?.crew.id === crew.id },
      `${crew.name} · ${crew.status.toLowerCase().replace("_", " ")} · ${routeOf(crew.id).length} jobs` +
        (missing(crew).length ? ` · lacks ${missing(crew).join(", ")}` : ""))));
  const generatorSelect = ticket.needsGenerator ? el("select", { id: "assign-generator", name: "generator" },
    el("option", { value: "" }, "no generator"),
    state.generators.filter((g) => g.status === "AVAILABLE" || g.assignedTicket?.id === ticket.id)
      .map((g) => el("option", { value: g.id }, `${g.name} · ${g.capacityKw} kW`))) : null;
  const pin = el("input", { type: "checkbox", id: "assign-pin", name: "pin", checked: Boolean(ticket.assignment?.pinned) });
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "assign", id: "assign-form" },
    el("h3", {}, ticket.assignment ? "Reassign by hand" : "Assign by hand"),
    el("label", { for: "assign-crew" }, "crew"), crewSelect,
    generatorSelect ? [el("label", { for: "assign-generator" }, "generator"), generatorSelect] : [],
    el("label", { class: "inline" }, pin, " pin (every later optimisation keeps it)"),
    error,
    el("button", { type: "submit", class: "primary", id: "assign-submit" }, "Assign"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const input = { ticketId: ticket.id, crewId: crewSelect.value, pin: pin.checked };
    if (generatorSelect && generatorSelect.value) input.generatorId = generatorSelect.value;
    form.querySelector("button[type=submit]").disabled = true;
    try {
      const data = await gql(ASSIGN, { input }, state.token);
      const failure = payloadFailure(data.assignTicket);
      if (failure) throw failure;
      const result = data.assignTicket;
      upsertTicket(result.assignment.ticket);
      toast(`${ticket.number} → ${result.assignment.crew.name}${result.assignment.pinned ? " (pinned)" : ""}` +
            (result.warnings.length ? ` · ${result.warnings.join("; ")}` : ""), result.warnings.length ? "warn" : "ok");
      scheduleFleetRefresh();
    } catch (failure) {
      error.textContent = failureText(failure);
    } finally {
      form.querySelector("button[type=submit]").disabled = false;
    }
  });
  return form;
}

// ------------------------------------------------------------------ optimise: propose, review, commit

async function optimise() {
  const button = $("optimise");
  button.disabled = true;
  const seconds = Number($("time-limit").value);
  const box = $("proposal");
  box.hidden = false;
  box.replaceChildren(el("h2", {}, "Optimising…"), el("p", { class: "muted" }, `solving for up to ${seconds} s`));
  try {
    const data = await gql(OPTIMISE, { input: { timeLimitSeconds: seconds, commit: false } }, state.token);
    const failure = payloadFailure(data.optimizeDispatch);
    if (failure) throw failure;
    state.proposal = data.optimizeDispatch.plan;
    drawProposal();
    scheduleRender();
  } catch (failure) {
    box.replaceChildren(el("h2", {}, "Optimisation failed"), el("p", { class: "error", role: "alert" }, failureText(failure)),
      el("button", { type: "button", onclick: discardProposal }, "Close"));
  } finally {
    button.disabled = false;
  }
}

function drawProposal() {
  const plan = state.proposal;
  const box = $("proposal");
  if (!plan) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const changes = plan.assignments.map((a) => {
    const current = state.tickets.get(a.ticket.id)?.assignment;
    return { a, change: !current ? "new" : current.crew.id !== a.crew.id ? "moved" : "kept" };
  });
  const counts = { new: 0, moved: 0, kept: 0 };
  for (const c of changes) counts[c.change] += 1;
  const byCrew = new Map();
  for (const c of changes) {
    if (!byCrew.has(c.a.crew.id)) byCrew.set(c.a.crew.id, { crew: c.a.crew, items: [] });
    byCrew.get(c.a.crew.id).items.push(c);
  }
  const groups = [...byCrew.values()].sort((x, y) => x.crew.name.localeCompare(y.crew.name));
  box.hidden = false;
  box.dataset.planId = plan.id;
  box.replaceChildren(
    el("h2", {}, `Proposed plan ${shortId(plan.id)}`),
    el("p", { class: "plan-figures" },
      `${plan.assignments.length} jobs (${counts.new} new, ${counts.moved} moved to another crew) · ` +
      `${plan.unassigned.length} left unassigned · ${plan.lateTickets} late · ` +
      `${Math.round(plan.totalTravelMinutes)} min travel · solved in ${plan.solveSeconds.toFixed(1)} s`),
    el("p", { class: "muted" }, "Dashed lines on the map are the proposed routes. Nothing changes until you commit."),
    el("div", { class: "buttons" },
      el("button", { type: "button", class: "primary", id: "commit-plan", onclick: commitProposal }, "Commit plan"),
      el("button", { type: "button", id: "discard-plan", onclick: discardProposal }, "Discard")),
    el("details", { open: true }, el("summary", {}, `Assignments by crew (${groups.length} crews)`),
      groups.map((g) => el("div", { class: "plan-crew" },
        el("h3", {}, el("i", { class: "swatch", style: { background: crewColour(g.crew.id) } }), g.crew.name),
        el("ol", {}, g.items.sort((x, y) => x.a.sequence - y.a.sequence).map(({ a, change }) => el("li", { class: `change-${change}` },
          chip(a.ticket.priority.toLowerCase(), `p-${a.ticket.priority}`), " ",
          el("strong", {}, a.ticket.number), ` ETA ${time(a.plannedArrival)}`,
          change !== "kept" ? chip(change, "muted") : "", a.pinned ? chip("pinned", "muted") : "",
          a.generator ? ` · with ${a.generator.name}` : "",
          el("div", { class: "reason" }, a.reason || "—"))))))),
    el("details", { open: plan.unassigned.length > 0 && plan.unassigned.length <= 20 },
      el("summary", {}, `Unassigned (${plan.unassigned.length})`),
      el("ul", { class: "plan-unassigned" }, plan.unassigned.map((u) => el("li", {},
        chip(u.ticket.priority.toLowerCase(), `p-${u.ticket.priority}`), " ", el("strong", {}, u.ticket.number),
        el("div", { class: "reason" }, u.reason))))),
  );
}

async function commitProposal() {
  const plan = state.proposal;
  if (!plan) return;
  const button = $("commit-plan");
  button.disabled = true;
  try {
    const data = await gql(COMMIT, { input: { planId: plan.id } }, state.token);
    const failure = payloadFailure(data.commitDispatchPlan);
    if (failure) throw failure;
    state.proposal = null;
    drawProposal();
    toast(`Plan ${shortId(plan.id)} committed: crews and customers are told`, "ok");
  } catch (failure) {
    failed(failure);
    button.disabled = false;
    return;
  }
  await reload().catch(failed);
}

function discardProposal() {
  state.proposal = null;
  drawProposal();
  scheduleRender();
}

// ------------------------------------------------------------------ data and live updates

function upsertTicket(ticket) {
  state.tickets.set(ticket.id, ticket);
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    drawMap();
    drawLists();
    drawDetail();
  });
}

function select(type, id) {
  state.selected = { type, id };
  scheduleRender();
}

function clearSelection() {
  state.selected = null;
  scheduleRender();
}

async function loadTickets() {
  const tickets = new Map();
  let after = null;
  for (;;) {
    const data = await gql(TICKETS, { after }, state.token);
    for (const edge of data.tickets.edges) tickets.set(edge.node.id, edge.node);
    if (!data.tickets.pageInfo.hasNextPage) break;
    after = data.tickets.pageInfo.endCursor;
  }
  state.tickets = tickets;
}

async function loadFleet() {
  const data = await gql(FLEET, {}, state.token);
  state.crews = data.crews;
  state.generators = data.mobileGenerators;
  state.latestPlan = data.dispatchPlan;
}

async function reload() {
  await Promise.all([loadTickets(), loadFleet()]);
  scheduleRender();
}

function scheduleFleetRefresh() {
  clearTimeout(fleetTimer);
  fleetTimer = setTimeout(async () => {
    try {
      await loadFleet();
      scheduleRender();
    } catch (failure) {
      failed(failure);
    }
  }, 1500);
}

function onLiveTicket(ticket) {
  const before = state.tickets.get(ticket.id);
  if (isOpen(ticket)) upsertTicket(ticket);
  else state.tickets.delete(ticket.id);
  if (!before || before.status !== ticket.status) {
    const now = new Date().toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    state.feed.unshift({ at: now, text: `${ticket.number} ${before ? `${STATUS_LABEL[before.status]} → ` : ""}${STATUS_LABEL[ticket.status]}` });
    state.feed.length = Math.min(state.feed.length, 12);
  }
  scheduleFleetRefresh();
  scheduleRender();
}

function setLive(value) {
  const badge = $("live");
  if (value === "offline") state.dropped = true;
  state.liveState = value;
  badge.dataset.state = value;
  badge.textContent = { connecting: "connecting", live: "live", offline: "offline, retrying", closed: "not live" }[value] || value;
  if (value === "live" && state.dropped) {
    state.dropped = false;
    reload().catch(failed); // catch up on what happened while the connection was down
  }
}

/** A failed call: back to the sign-in when the token no longer works (expired, revoked), else a message. */
function failed(failure) {
  if (failure instanceof GraphQLFailure && failure.errors.some((e) => e.extensions?.code === "UNAUTHENTICATED" || e.code === "UNAUTHENTICATED")) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showLogin("Your session has ended (the token expired or was revoked): sign in again.");
    return;
  }
  toast(failureText(failure), "error");
}

function startLive() {
  state.subscription?.close();
  state.subscription = subscribe({
    query: LIVE, token: state.token,
    onData: (data) => onLiveTicket(data.dispatchBoard),
    onError: (failure) => toast(`live updates: ${failureText(failure)}`, "error"),
    onState: setLive,
  });
}

// ------------------------------------------------------------------ sign-in and start

async function who(token) {
  const data = await gql("query BoardMe { me { role } }", {}, token);
  return data.me.role;
}

function showLogin(message = "") {
  state.subscription?.close();
  state.timers.forEach(clearInterval);
  state.timers = [];
  $("board").hidden = true;
  $("actions").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function start(token) {
  const role = await who(token).catch(() => "PUBLIC");
  if (role !== "DISPATCHER" && role !== "ADMIN") {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(role === "PUBLIC" ? "That token is not valid (expired or mistyped)." : `A ${role.toLowerCase()} token can't open the board: use a dispatcher token.`);
    return;
  }
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  $("board").hidden = false;
  $("actions").hidden = false;
  if (!map) {
    const region = await (await fetch("/region.geojson")).json();
    $("region-name").textContent = `· ${region.name.en} ${region.name.zh}`;
    map = new RegionMap($("map"), region);
    map.onViewChange = scheduleRender;
  }
  startLive();
  try {
    await reload();
  } catch (failure) {
    failed(failure);
    return;
  }
  document.body.dataset.ready = "true";
  state.timers.push(setInterval(() => loadFleet().then(scheduleRender).catch(failed), FLEET_REFRESH_MS));
  // `overdue` is computed on every read: a full reload now and then shows tickets that became late quietly.
  state.timers.push(setInterval(() => reload().catch(failed), FULL_RELOAD_MS));
}

function init() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? `?${params}` : ""));
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    start($("token").value.trim().replace(/^Bearer\s+/i, ""));
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showLogin();
  });
  $("optimise").addEventListener("click", optimise);
  $("zoom-in").addEventListener("click", () => map?.zoom(0.7));
  $("zoom-out").addEventListener("click", () => map?.zoom(1 / 0.7));
  $("zoom-reset").addEventListener("click", () => map?.reset());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearSelection();
  });
  const token = fromUrl || sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token).catch((failure) => showLogin(failureText(failure)));
  else showLogin();
}

init();
