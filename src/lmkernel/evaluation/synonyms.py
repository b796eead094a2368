"""Word lists for the robustness perturbations, written by hand for this project.

They are deliberately a different source from the training augmentation's (nearest neighbours in the
encoder's own embedding table), so a model is not tested on the substitutions it was trained on. Each
group holds words of the same sense and polarity; a group never mixes praise and blame.
"""

from __future__ import annotations

EN_GROUPS = [
    "film movie picture flick", "films movies pictures", "actor performer", "actors performers cast",
    "story tale narrative", "plot storyline", "director filmmaker", "scene sequence", "ending finale conclusion",
    "audience viewers", "character figure", "characters figures", "screenplay script", "music score soundtrack",
    "comedy farce", "drama melodrama", "book novel", "hotel inn", "room chamber", "phone handset",
    "service assistance", "food meal", "staff employees", "price cost", "good fine decent nice",
    "great terrific tremendous", "excellent outstanding superb exceptional", "wonderful marvelous delightful",
    "beautiful gorgeous lovely stunning", "funny hilarious amusing comical", "interesting intriguing engaging",
    "enjoyable pleasant pleasurable", "smart clever intelligent", "moving touching poignant", "fresh original",
    "best finest", "brilliant dazzling", "charming appealing endearing", "powerful strong forceful",
    "entertaining diverting", "impressive remarkable", "perfect flawless ideal", "happy glad cheerful",
    "loved adored", "liked enjoyed", "recommend endorse", "bad poor lousy",
    "terrible awful dreadful horrible", "boring dull tedious tiresome", "stupid dumb idiotic", "worst poorest",
    "ugly hideous unsightly", "weak feeble flimsy", "annoying irritating grating", "disappointing underwhelming",
    "mediocre middling unremarkable", "silly foolish ridiculous", "mess shambles", "pointless meaningless aimless",
    "predictable formulaic", "slow sluggish plodding", "sad unhappy gloomy", "hate loathe detest",
    "hated loathed detested", "very really extremely", "quite fairly", "big large huge",
    "many numerous", "often frequently", "always constantly", "almost nearly", "completely totally entirely",
    "simply merely", "mostly largely", "seems appears", "seem appear", "gives provides", "try attempt",
    "whole entire", "new recent", "old aged", "hard difficult", "easy simple", "quick fast rapid",
    "real genuine authentic", "strange odd weird bizarre", "important significant", "obvious evident apparent",
    "enough sufficient",
]

ZH_GROUPS = [
    "很 挺 十分 非常 特别", "电影 影片", "演员 演出者", "故事 情节", "导演 编导", "酒店 宾馆 饭店", "房间 客房",
    "服务 服务态度", "手机 电话", "价格 价钱", "东西 物品", "地方 地点", "时候 时间",
    "好 棒 优秀", "满意 称心", "喜欢 喜爱", "推荐 推介", "漂亮 美丽 好看", "干净 整洁", "方便 便利",
    "舒服 舒适", "快 迅速", "有趣 有意思", "精彩 出色", "感动 动人", "开心 高兴 快乐",
    "差 糟糕 差劲", "失望 沮丧", "难用 难使", "难看 丑陋", "无聊 乏味 枯燥", "讨厌 厌恶", "脏 肮脏",
    "慢 缓慢", "贵 昂贵", "吵 嘈杂", "生气 愤怒", "垃圾 废物", "麻烦 繁琐",
    "觉得 感觉 认为", "真的 确实 的确", "有点 有些", "还是 仍然", "已经 早已", "所以 因此", "但是 可是 不过",
    "因为 由于", "一直 始终", "马上 立刻 立即", "完全 彻底", "比较 相对",
]

NEGATIONS_EN = frozenset(
    "not no never nor none nothing neither nobody nowhere without hardly barely scarcely cannot "
    "n't don't doesn't didn't isn't aren't wasn't weren't won't wouldn't can't couldn't shouldn't".split())
NEGATIONS_ZH = frozenset("不没无非别未莫勿否")


def _table(groups: list[str], banned: frozenset = frozenset()) -> dict[str, list[str]]:
    """word -> its synonyms; words holding a ``banned`` character (非常, 特别: 非, 别) are left out, so a swap
    never adds or removes a negation character."""
    out: dict[str, list[str]] = {}
    for group in groups:
        words = [w for w in group.split() if not any(c in banned for c in w)]
        for w in words:
            out.setdefault(w, []).extend(x for x in words if x != w and x not in out[w])
    return out


EN_SYNONYMS = _table(EN_GROUPS)
ZH_SYNONYMS = _table(ZH_GROUPS, NEGATIONS_ZH)

# Chinese characters a reader confuses: same pinyin (homophones) or a near-identical shape. Each pair
# replaces the first with the second; both are common characters, so the text stays readable.
ZH_CONFUSABLE = {
    "的": "得", "在": "再", "做": "作", "很": "狠", "那": "哪", "他": "她", "像": "象", "己": "已",
    "未": "末", "人": "入", "日": "曰", "士": "土", "买": "卖", "太": "大", "天": "夭", "住": "往",
    "问": "间", "候": "侯", "部": "都", "清": "请", "情": "晴", "理": "里", "意": "义", "以": "已",
    "是": "事", "又": "有", "带": "戴", "坐": "座", "练": "炼", "场": "厂", "吗": "嘛", "吧": "巴",
    "影": "映", "电": "点", "演": "眼", "员": "元", "店": "点", "房": "方", "间": "见", "服": "伏",
    "务": "物", "态": "太", "度": "渡", "价": "架", "格": "隔", "机": "鸡", "感": "赶", "觉": "角",
    "推": "堆", "荐": "见", "喜": "洗", "欢": "换", "满": "慢", "精": "睛", "彩": "采", "差": "茶",
    "失": "矢", "望": "忘", "糟": "遭", "糕": "羔", "难": "南", "用": "甩", "错": "措", "棒": "捧",
}

# Keyboard neighbours on a QWERTY layout, for typo perturbations.
_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
KEYBOARD = {}
for r, row in enumerate(_ROWS):
    for c, ch in enumerate(row):
        near = [row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)]
        for other in (r - 1, r + 1):
            if 0 <= other < len(_ROWS):
                near += [_ROWS[other][i] for i in (c - 1, c, c + 1) if 0 <= i < len(_ROWS[other])]
        KEYBOARD[ch] = "".join(near)
