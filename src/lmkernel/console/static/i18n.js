// Every interface string, English and Chinese: the one dictionary the page reads (t(key)).
const I18N = {
  en: {
    "tab.runs": "Runs", "tab.new": "New run", "tab.play": "Playground", "tab.monitor": "Monitor",
    "tab.tune": "Search (tuning)",
    "key.ask": "API key for this console:", "key.save": "Use key",
    "runs.refresh": "Refresh", "runs.compare": "Compare selected", "runs.hint": "Click a run for its report; tick two or more to compare.",
    "runs.compared": "Runs compared", "runs.none": "No runs in this folder yet.",
    "col.run": "run", "col.task": "task", "col.model": "model", "col.method": "method", "col.metric": "metric",
    "col.validation": "validation", "col.test": "test", "col.size": "size", "col.date": "date", "col.status": "status",
    "report.metrics": "Metrics", "report.confusion": "Confusion matrix", "report.errors": "Errors (first rows)",
    "report.plots": "Plots", "report.curve": "Loss curve", "report.gold": "gold \\ predicted", "report.setting": "setting",
    "compare.need": "Tick two or more runs to compare.",
    "new.name": "Run name", "new.check": "Check", "new.start": "Start", "new.stop": "Stop", "new.resume": "Resume",
    "new.ok": "Spec is valid.", "new.line": "line", "new.fix": "fix",
    "new.where": "Runs started here train on {device} ({gpu}) in their own process, on all {cpus} CPU cores unless train.threads says otherwise; the playground runs in the console with {threads} torch threads. New runs go to {folder}; relative paths in the spec start at {base}.",
    "job.running": "running: step {step} of {total}", "job.starting": "starting…", "job.ended": "ended (exit code {code}), status: {status}",
    "job.stopped": "stopped", "job.train": "train loss", "job.eval": "eval loss",
    "play.run": "Run", "play.classify": "Classify / tag", "play.chat": "Chat", "play.search": "Search a knowledge index",
    "play.go": "Go", "play.send": "Send", "play.index": "index folder", "play.query": "query", "play.label": "label",
    "play.none": "No entities found.",
    "play.src.run": "a run in this folder", "play.src.served": "a served model (lmkernel serve)", "play.connect": "Connect",
    "play.served": "served: {id} ({task})", "play.notclassifier": "the server's model is a {task} model: use the chat box",
    "mon.key": "server API key (optional)", "mon.watch": "Watch", "mon.shares": "Label shares",
    "mon.confidence": "Confidence", "mon.alerts": "Alerts", "mon.recent": "Alerts fired lately", "mon.count": "requests", "mon.window": "window",
    "mon.off": "This server has no monitor (it is not a classifier).",
    "mon.rule": "rule", "mon.when": "condition", "mon.state": "state", "mon.value": "value", "mon.fired": "times fired",
    "mon.state.inactive": "inactive", "mon.state.pending": "pending", "mon.state.firing": "FIRING", "mon.state.resolved": "resolved",
    "tune.hint": "Searches run by `lmkernel tune` (folders with a study.db); open one to follow it live.",
    "tune.none": "No study folders found.", "tune.trials": "{n} trial folders",
    "tune.maximize": "higher is better", "tune.minimize": "lower is better",
    "tune.searching": "searching", "tune.finished": "finished (report.md written)", "tune.idle": "no trial running",
    "tune.best": "Best so far: trial {n}, {value} with", "tune.nobest": "No trial has completed yet.",
    "tune.history": "Optimisation history", "tune.intermediate": "Intermediate values (per % of an epoch)",
    "tune.value": "trial value", "tune.bestline": "best so far",
    "tune.col.state": "state", "tune.col.reached": "reached (% epoch)", "tune.col.cpu": "CPU s",
    "tune.state.running": "running", "tune.state.complete": "complete", "tune.state.pruned": "pruned",
    "tune.state.fail": "failed", "tune.state.interrupted": "interrupted", "tune.state.waiting": "waiting",
    "err.key": "The console needs its API key.",
  },
  zh: {
    "tab.runs": "运行", "tab.new": "新建运行", "tab.play": "试用", "tab.monitor": "监控", "tab.tune": "超参搜索",
    "key.ask": "本控制台的 API 密钥：", "key.save": "使用密钥",
    "runs.refresh": "刷新", "runs.compare": "比较所选", "runs.hint": "点击运行查看报告；勾选两个或以上进行比较。",
    "runs.compared": "运行比较", "runs.none": "此文件夹中还没有运行。",
    "col.run": "运行", "col.task": "任务", "col.model": "模型", "col.method": "方法", "col.metric": "指标",
    "col.validation": "验证集", "col.test": "测试集", "col.size": "大小", "col.date": "日期", "col.status": "状态",
    "report.metrics": "指标", "report.confusion": "混淆矩阵", "report.errors": "错误样例（前几行）",
    "report.plots": "图表", "report.curve": "损失曲线", "report.gold": "真实 \\ 预测", "report.setting": "设置",
    "compare.need": "请勾选两个或以上的运行。",
    "new.name": "运行名称", "new.check": "检查", "new.start": "开始", "new.stop": "停止", "new.resume": "继续",
    "new.ok": "配置有效。", "new.line": "行", "new.fix": "修改建议",
    "new.where": "在此启动的运行在独立进程中于 {device}（{gpu}）上训练，默认使用全部 {cpus} 个 CPU 核（train.threads 可更改）；试用区在控制台进程中使用 {threads} 个 torch 线程。新运行保存在 {folder}；配置中的相对路径从 {base} 开始。",
    "job.running": "运行中：第 {step} / {total} 步", "job.starting": "启动中…", "job.ended": "已结束（退出码 {code}），状态：{status}",
    "job.stopped": "已停止", "job.train": "训练损失", "job.eval": "验证损失",
    "play.run": "运行", "play.classify": "分类 / 标注", "play.chat": "对话", "play.search": "搜索知识库",
    "play.go": "执行", "play.send": "发送", "play.index": "索引文件夹", "play.query": "查询", "play.label": "标签",
    "play.none": "未发现实体。",
    "play.src.run": "此文件夹中的运行", "play.src.served": "已部署的模型（lmkernel serve）", "play.connect": "连接",
    "play.served": "已连接：{id}（{task}）", "play.notclassifier": "该服务器的模型是 {task} 模型：请使用对话框",
    "mon.key": "服务器 API 密钥（可选）", "mon.watch": "开始监控", "mon.shares": "标签占比",
    "mon.confidence": "置信度", "mon.alerts": "告警", "mon.recent": "最近触发的告警", "mon.count": "请求数", "mon.window": "时间窗",
    "mon.off": "此服务器没有监控（不是分类模型）。",
    "mon.rule": "规则", "mon.when": "条件", "mon.state": "状态", "mon.value": "数值", "mon.fired": "触发次数",
    "mon.state.inactive": "未触发", "mon.state.pending": "待定", "mon.state.firing": "告警中", "mon.state.resolved": "已恢复",
    "tune.hint": "由 `lmkernel tune` 运行的搜索（含 study.db 的文件夹）；打开后实时跟踪。",
    "tune.none": "未找到搜索文件夹。", "tune.trials": "{n} 个试验文件夹",
    "tune.maximize": "越高越好", "tune.minimize": "越低越好",
    "tune.searching": "搜索中", "tune.finished": "已完成（已生成 report.md）", "tune.idle": "没有正在运行的试验",
    "tune.best": "目前最佳：试验 {n}，{value}，参数", "tune.nobest": "还没有完成的试验。",
    "tune.history": "优化历史", "tune.intermediate": "中间值（按 epoch 百分比）",
    "tune.value": "试验结果", "tune.bestline": "目前最佳",
    "tune.col.state": "状态", "tune.col.reached": "进度（epoch %）", "tune.col.cpu": "CPU 秒",
    "tune.state.running": "运行中", "tune.state.complete": "已完成", "tune.state.pruned": "已剪枝",
    "tune.state.fail": "失败", "tune.state.interrupted": "已中断", "tune.state.waiting": "等待中",
    "err.key": "控制台需要 API 密钥。",
  },
};
let LANG = sessionStorage.getItem("lmkConsoleLang") || (navigator.language || "en").startsWith("zh") && "zh" || "en";

function t(key, vars) {
  let s = (I18N[LANG] && I18N[LANG][key]) || I18N.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll("{" + k + "}", v);
  return s;
}

function applyLanguage() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-ph]").forEach(el => { el.placeholder = t(el.dataset.i18nPh); });
  document.getElementById("lang").textContent = LANG === "zh" ? "English" : "中文";
}
