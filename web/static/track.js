// Customer tracking: ticket number + last 4 phone digits → status, ETA, ETR and the timeline, live through
// `ticketUpdated`; a feedback form once resolved. Chinese and English (default from the browser's language).

import { el, gql, GraphQLFailure, payloadFailure, subscribe } from "./gql.js";

const TEXT = {
  zh: {
    title: "抢修进度查询",
    intro: "输入工单号和报修电话的后四位，查看抢修进度。",
    number: "工单号",
    last4: "手机号后四位",
    track: "查询",
    eta: "预计到达",
    etr: "预计恢复供电",
    restored: "已恢复供电",
    arrived: "已到达现场",
    timeline: "处理记录",
    another: "查询其他工单",
    feedbackTitle: "请评价本次服务",
    score: "满意度（1–5 星）",
    comment: "意见或建议（可选）",
    send: "提交评价",
    thanks: "感谢您的评价！",
    footer: "停电或危险情况请拨打 95598。本页不显示任何个人信息。",
    live: { connecting: "连接中…", live: "实时更新", offline: "网络中断，重连中…", closed: "未实时更新" },
    needNumber: "请输入工单号。",
    needDigits: "请输入 4 位数字。",
    needScore: "请选择 1 到 5 颗星。",
    errors: {
      NOT_FOUND: "未找到该工单，请核对工单号和手机号后四位。",
      RATE_LIMITED: "查询次数过多，请稍后再试。",
      DUPLICATE: "您已评价过此工单，感谢！",
      CONFLICT: "工单处理完成后才能评价。",
      NETWORK: "网络异常，请稍后重试。",
    },
    status: {
      NEW: "已受理", ASSIGNED: "已派单", EN_ROUTE: "抢修人员在途中", ON_SITE: "抢修人员已到达现场",
      ON_HOLD: "暂停处理", RESOLVED: "已修复", CLOSED: "已办结", CANCELLED: "已取消",
    },
    statusText: {
      NEW: "我们已收到您的报修，正在安排抢修人员。",
      ASSIGNED: "已安排抢修班组，稍后出发。",
      EN_ROUTE: "抢修人员正在赶往现场。",
      ON_SITE: "抢修人员已到达现场，正在处理故障。",
      ON_HOLD: "处理暂时中止，我们会与您联系。",
      RESOLVED: "故障已修复。欢迎评价本次服务。",
      CLOSED: "工单已办结。",
      CANCELLED: "工单已取消。",
    },
    steps: ["已受理", "已派单", "在途中", "已到达", "已修复"],
    timelineMessages: {
      "Report received": "已受理报修",
      "A repair crew has been assigned": "已安排抢修班组",
      "The crew is on the way": "抢修人员已出发",
      "The crew has arrived and is working on the fault": "抢修人员已到达现场，正在处理故障",
      "Work is paused; we will contact you": "处理暂停，我们会与您联系",
      "Repair finished": "抢修完成",
      "Ticket closed": "工单已办结",
      "Ticket cancelled": "工单已取消",
    },
    inMinutes: (n) => (n <= 0 ? "即将" : n < 60 ? `约 ${n} 分钟后` : `约 ${Math.floor(n / 60)} 小时 ${n % 60} 分钟后`),
    locale: "zh-CN",
    other: "English",
  },
  en: {
    title: "Repair tracking",
    intro: "Enter your ticket number and the last 4 digits of the phone you reported from.",
    number: "Ticket number",
    last4: "Last 4 digits of your phone",
    track: "Track",
    eta: "Crew expected",
    etr: "Power expected back",
    restored: "Power restored",
    arrived: "arrived",
    timeline: "Timeline",
    another: "Track another ticket",
    feedbackTitle: "How did we do?",
    score: "Your rating (1–5 stars)",
    comment: "Comments (optional)",
    send: "Send feedback",
    thanks: "Thank you for your feedback!",
    footer: "For outages or danger call 95598. This page shows no personal data.",
    live: { connecting: "connecting…", live: "live", offline: "offline, reconnecting…", closed: "not live" },
    needNumber: "Enter the ticket number.",
    needDigits: "Enter 4 digits.",
    needScore: "Choose 1 to 5 stars.",
    errors: {
      NOT_FOUND: "No ticket matches that number and those digits. Please check both.",
      RATE_LIMITED: "Too many attempts. Please try again later.",
      DUPLICATE: "You have already rated this ticket. Thank you!",
      CONFLICT: "Feedback opens once the repair is finished.",
      NETWORK: "Network problem. Please try again.",
    },
    status: {
      NEW: "Received", ASSIGNED: "Crew assigned", EN_ROUTE: "Crew on the way", ON_SITE: "Crew on site",
      ON_HOLD: "On hold", RESOLVED: "Repaired", CLOSED: "Closed", CANCELLED: "Cancelled",
    },
    statusText: {
      NEW: "We have your report and are finding a crew.",
      ASSIGNED: "A repair crew has been assigned and will set off soon.",
      EN_ROUTE: "The crew is on the way to you.",
      ON_SITE: "The crew has arrived and is working on the fault.",
      ON_HOLD: "Work is paused; we will contact you.",
      RESOLVED: "The fault is repaired. Please tell us how we did.",
      CLOSED: "This ticket is closed.",
      CANCELLED: "This ticket was cancelled.",
    },
    steps: ["Received", "Assigned", "On the way", "On site", "Repaired"],
    timelineMessages: {},
    inMinutes: (n) => (n <= 0 ? "any moment" : n < 60 ? `in about ${n} min` : `in about ${Math.floor(n / 60)} h ${n % 60} min`),
    locale: "en-GB",
    other: "中文",
  },
};
const STEP_OF = { NEW: 0, ASSIGNED: 1, EN_ROUTE: 2, ON_SITE: 3, ON_HOLD: 1, RESOLVED: 4, CLOSED: 4 };
const FEEDBACK_OPEN = new Set(["RESOLVED", "CLOSED"]);
const LANG_KEY = "gridcrew.track.lang";

const TRACK = `query Track($number: String!, $last4: String!) {
  trackTicket(number: $number, phoneLast4: $last4) { number status eta etr powerRestoredAt timeline { at message } }
}`;
const LIVE = `subscription TrackLive($number: String!, $last4: String!) {
  ticketUpdated(number: $number, phoneLast4: $last4) { number status eta etr powerRestoredAt timeline { at message } }
}`;
const FEEDBACK = `mutation TrackFeedback($input: SubmitFeedbackInput!) { submitFeedback(input: $input) { errors { field message code } } }`;

const state = { lang: "en", query: null, tracking: null, subscription: null, live: "connecting", feedbackSent: false };
const $ = (id) => document.getElementById(id);

function t() {
  return TEXT[state.lang];
}

function defaultLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") return asked;
  const saved = localStorage.getItem(LANG_KEY);
  if (saved === "zh" || saved === "en") return saved;
  const languages = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  return String(languages[0]).toLowerCase().startsWith("zh") ? "zh" : "en";
}

function setLanguage(lang) {
  state.lang = lang;
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = lang === "zh" ? "抢修进度查询 · gridcrew" : "Repair tracking · gridcrew";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t()[node.dataset.i18n];
  $("lang").textContent = t().other;
  $("lang").dataset.lang = lang;
  setLive(state.live);
  if (state.tracking) render(state.tracking);
}

/** A time as the customer reads it; an expected one (`ahead`) also says how long from now. */
function when(iso, ahead = false) {
  if (!iso) return "—";
  const at = new Date(iso);
  const text = at.toLocaleString(t().locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const minutes = Math.round((at.getTime() - Date.now()) / 60000);
  return ahead && minutes > -5 ? `${text} (${t().inMinutes(minutes)})` : text;
}

function timelineMessage(message) {
  return t().timelineMessages[message] || message;
}

function errorText(failure) {
  const code = failure instanceof GraphQLFailure ? failure.code : "NETWORK";
  return t().errors[code] || (failure instanceof GraphQLFailure ? failure.message : t().errors.NETWORK);
}

function setLive(value) {
  state.live = value;
  const badge = $("live");
  badge.dataset.state = value;
  badge.textContent = t().live[value] || value;
}

function render(tracking) {
  state.tracking = tracking;
  const strings = t();
  $("result").hidden = false;
  $("lookup").hidden = true;
  $("result-number").textContent = tracking.number;
  const status = $("status");
  status.dataset.status = tracking.status;
  status.textContent = strings.status[tracking.status] || tracking.status;
  $("status-text").textContent = strings.statusText[tracking.status] || "";
  const done = tracking.status === "RESOLVED" || tracking.status === "CLOSED";
  const step = tracking.status === "CANCELLED" ? -1 : STEP_OF[tracking.status] ?? 0;
  $("steps").replaceChildren(...strings.steps.map((label, i) => el("li", {
    class: i < step || (done && i === step) ? "done" : i === step ? "current" : "",
  }, label)));
  const closed = done || tracking.status === "CANCELLED";
  for (const id of ["eta", "etr"]) {
    $(id).hidden = closed;
    $(id).previousElementSibling.hidden = closed;
  }
  $("eta").textContent = tracking.status === "ON_SITE" ? strings.arrived : when(tracking.eta, true);
  $("etr").textContent = when(tracking.etr, true);
  const restored = Boolean(tracking.powerRestoredAt);
  $("restored").hidden = !restored;
  $("restored-label").hidden = !restored;
  $("restored").textContent = restored ? when(tracking.powerRestoredAt) : "—";
  $("timeline").replaceChildren(...[...tracking.timeline].reverse().map((line) => el("li", {},
    el("time", { datetime: line.at }, new Date(line.at).toLocaleString(strings.locale, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })),
    el("span", {}, timelineMessage(line.message)))));
  $("feedback").hidden = !FEEDBACK_OPEN.has(tracking.status);
  if (state.feedbackSent) {
    $("feedback-form").hidden = true;
    $("feedback-done").hidden = false;
  }
}

function follow(number, last4) {
  state.subscription?.close();
  state.subscription = subscribe({
    query: LIVE,
    variables: { number, last4 },
    onData: (data) => render(data.ticketUpdated),
    onError: () => setLive("closed"),
    onState: setLive,
  });
}

async function lookup(event) {
  event.preventDefault();
  const number = $("number").value.trim().toUpperCase();
  const last4 = $("last4").value.trim();
  const error = $("lookup-error");
  error.textContent = "";
  if (!number) return void (error.textContent = t().needNumber);
  if (!/^\d{4}$/.test(last4)) return void (error.textContent = t().needDigits);
  const button = $("lookup").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const data = await gql(TRACK, { number, last4 });
    if (!data.trackTicket) throw new GraphQLFailure([{ message: "not found", extensions: { code: "NOT_FOUND" } }]);
    state.query = { number, last4 };
    state.feedbackSent = false;
    $("feedback-form").hidden = false;
    $("feedback-done").hidden = true;
    render(data.trackTicket);
    follow(number, last4);
  } catch (failure) {
    error.textContent = errorText(failure);
  } finally {
    button.disabled = false;
  }
}

async function sendFeedback(event) {
  event.preventDefault();
  const error = $("feedback-error");
  error.textContent = "";
  const chosen = document.querySelector("input[name=score]:checked");
  if (!chosen) return void (error.textContent = t().needScore);
  const button = $("feedback-form").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const input = { ticketNumber: state.query.number, phoneLast4: state.query.last4, score: Number(chosen.value),
                    comment: $("comment").value.trim() || null };
    const data = await gql(FEEDBACK, { input });
    const failure = payloadFailure(data.submitFeedback);
    if (failure && failure.code !== "DUPLICATE") throw failure;
    state.feedbackSent = true;
    $("feedback-form").hidden = true;
    $("feedback-done").hidden = false;
    if (failure) $("feedback-done").textContent = t().errors.DUPLICATE;
  } catch (failure) {
    error.textContent = errorText(failure);
  } finally {
    button.disabled = false;
  }
}

function another() {
  state.subscription?.close();
  state.subscription = null;
  state.tracking = null;
  $("result").hidden = true;
  $("feedback").hidden = true;
  $("lookup").hidden = false;
  $("number").focus();
}

function init() {
  setLanguage(defaultLanguage());
  const number = new URLSearchParams(location.search).get("number");
  if (number) $("number").value = number;
  $("lang").addEventListener("click", () => setLanguage(state.lang === "zh" ? "en" : "zh"));
  $("lookup").addEventListener("submit", lookup);
  $("feedback-form").addEventListener("submit", sendFeedback);
  $("another").addEventListener("click", another);
  // a whole minute passing changes "in about N min": refresh the relative times
  setInterval(() => state.tracking && render(state.tracking), 60000);
  document.body.dataset.ready = "true";
}

init();
