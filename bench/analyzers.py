"""Measure candidate Chinese analyzers for the Whoosh index: recall, precision, build time, size, query time.

Run by hand, not by the test suite:

    .venv/bin/python bench/analyzers.py [--documents 20000] [--queries 300] [--seed 1]

Times are CPU time of this process (the machine is shared, so wall time is noise).
Recall and precision are against a brute-force scan of the same fields with the semantics that
kjdms.search.analysis.substring_matches documents, on the committed relevance set
(tests/search/relevance.yaml) and on generated dossiers. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from whoosh.analysis import CompositeAnalyzer, StandardAnalyzer, Token, Tokenizer
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import create_in
from whoosh.query import And, NullQuery, Or, Phrase, Term

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kjdms.search.analysis import chinese_analyzer, normalize, query_pieces, text_query  # noqa: E402
# The bench reuses the module's unit splitter and its substring rule (the unit test checks that rule).
from kjdms.search.analysis import occurs, text_units  # noqa: E402

FIELDS = ("name", "employer", "text")
RELEVANCE = Path(__file__).resolve().parent.parent / "tests" / "search" / "relevance.yaml"


# ---------------------------------------------------------------- candidates

class UnigramTokenizer(Tokenizer):
    """Emit each CJK character, word and mark at its unit position, with no bigrams."""

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, tokenize=True, mode="", **kwargs):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for _, text, position, startchar, endchar in text_units(value):
            token.original = token.text = text
            token.boost = 1.0
            token.pos = start_pos + position
            token.startchar, token.endchar = start_char + startchar, start_char + endchar
            yield token


def unigram_query(fieldnames, text):
    """Return a phrase of unigrams per piece: exact, but every character's postings are read."""
    pieces = []
    for piece in query_pieces(text):
        words = [unit[1] for unit in text_units(piece)]
        pieces.append(Or([Term(f, words[0]) if len(words) == 1 else Phrase(f, words) for f in fieldnames]))
    return And(pieces).normalize() if pieces else NullQuery


def analyzed_query(analyzer):
    """Return a query builder that ANDs the analyzer's tokens of each piece, within one field."""
    def build(fieldnames, text):
        pieces = []
        for piece in text.split():
            words = list(dict.fromkeys(token.text for token in analyzer(piece, mode="query")))
            if not words:
                continue
            pieces.append(Or([And([Term(f, w) for w in words]) for f in fieldnames]))
        return And(pieces).normalize() if pieces else NullQuery
    return build


class JiebaUnigramTokenizer(Tokenizer):
    """Emit jieba's search-mode words and, as well, every Han character on its own."""

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, tokenize=True, mode="", **kwargs):
        import jieba
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        seen = set()
        for word, start, end in jieba.tokenize(value, mode="search"):
            word = word.strip().lower()
            if not word:
                continue
            token.original = token.text = word
            token.pos, token.startchar, token.endchar = start, start, end
            seen.add((word, start))
            yield token
            if mode == "query":
                continue
            for offset, char in enumerate(word):
                if len(word) > 1 and re.match(r"[\u4e00-\u9fff]", char) and (char, start + offset) not in seen:
                    seen.add((char, start + offset))
                    token.original = token.text = char
                    token.pos, token.startchar, token.endchar = start + offset, start + offset, start + offset + 1
                    yield token


def candidates():
    """Return (label, analyzer, query builder) for each candidate."""
    found = [
        ("unigram+bigram (chosen)", chinese_analyzer(), text_query),
        ("unigram, phrase queries", CompositeAnalyzer(UnigramTokenizer()), unigram_query),
        ("whoosh StandardAnalyzer", StandardAnalyzer(), analyzed_query(StandardAnalyzer())),
    ]
    try:
        import jieba
        from jieba.analyse import ChineseAnalyzer
    except ImportError:
        # jieba is only compared here, not a dependency of kjdms.
        print("jieba is not installed (pip install jieba): its candidates are skipped")
        return found
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    jieba_unigrams = CompositeAnalyzer(JiebaUnigramTokenizer())
    return found[:2] + [
        ("jieba ChineseAnalyzer", ChineseAnalyzer(), analyzed_query(ChineseAnalyzer())),
        ("jieba + unigrams", jieba_unigrams, analyzed_query(jieba_unigrams)),
    ] + found[2:]


# ---------------------------------------------------------------- reference

def reference_scan(documents, normals, query, whole_words=True):
    """Return the ids whose normalised fields contain every piece; whole_words as the module decides."""
    pieces = query_pieces(query)
    if not pieces:
        return set()
    matches = occurs if whole_words else (lambda field, piece: piece in field)
    return {document["id"] for document, fields in zip(documents, normals)
            if all(any(matches(field, piece) for field in fields) for piece in pieces)}


# ---------------------------------------------------------------- data

SURNAMES = ("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶"
            "阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文")
COMPOUND = ["欧阳", "司马", "诸葛", "上官", "皇甫", "司徒", "东方", "慕容", "令狐", "尉迟"]
GIVEN = "子文明华建国秀英丽娟敏静芳强磊军洋勇艳杰娜涛超霞平刚桂兰玉梅志红飞鹏宇浩然欣怡晨轩博雨泽思佳琪瑶辰睿航雪琳伟"
MINORITY = ["阿依古丽", "买买提", "热合曼", "古丽娜尔", "吐尔逊", "迪丽努尔", "艾力", "阿不都拉", "帕提古丽", "努尔"]
DISTRICTS = {
    "沈阳市": "和平区 沈河区 大东区 皇姑区 铁西区 苏家屯区 浑南区 沈北新区 于洪区 辽中区 新民市 康平县 法库县",
    "大连市": "中山区 西岗区 沙河口区 甘井子区 旅顺口区 金州区 普兰店区 瓦房店市 庄河市 长海县",
    "鞍山市": "铁东区 铁西区 立山区 千山区 海城市 台安县 岫岩满族自治县",
    "抚顺市": "新抚区 东洲区 望花区 顺城区 抚顺县 新宾满族自治县 清原满族自治县",
    "本溪市": "平山区 溪湖区 明山区 南芬区 本溪满族自治县 桓仁满族自治县",
    "丹东市": "元宝区 振兴区 振安区 东港市 凤城市 宽甸满族自治县",
    "锦州市": "古塔区 凌河区 太和区 凌海市 北镇市 黑山县 义县",
    "营口市": "站前区 西市区 鲅鱼圈区 老边区 盖州市 大石桥市",
    "阜新市": "海州区 新邱区 太平区 清河门区 细河区 阜新蒙古族自治县 彰武县",
    "辽阳市": "白塔区 文圣区 宏伟区 弓长岭区 太子河区 灯塔市 辽阳县",
    "盘锦市": "双台子区 兴隆台区 大洼区 盘山县",
    "铁岭市": "银州区 清河区 调兵山市 开原市 铁岭县 西丰县 昌图县",
    "朝阳市": "双塔区 龙城区 北票市 凌源市 朝阳县 建平县 喀喇沁左翼蒙古族自治县",
    "葫芦岛市": "连山区 龙港区 南票区 兴城市 绥中县 建昌县",
}
BRANDS = "华信 正源 恒泰 诚信 东方 金桥 鑫达 瑞丰 天成 宏远 北方 辽海 中联 信达 安泰 示范 新华 永安 利民 百川 ABC XYZ".split()
KINDS = ("会计服务有限公司 财务咨询有限公司 会计师事务所（特殊普通合伙） 代理记账有限公司 税务师事务所 "
         "科技有限公司 商贸有限公司 机械制造有限公司 农业合作社 中心小学 人民医院").split()
LINES = [
    "{y}年取得初级会计专业技术资格，证书编号Z{y}21{n:07d}",
    "会计专业技术资格证书（中级） 管理号{y}2101{n:05d}",
    "高级会计师 评审通过 {y}年 辽宁省财政厅",
    "继续教育合格证明 {y}年度 学时90 专业科目60",
    "毕业证书 东北财经大学 会计学 本科 {y}年7月",
    "中级会计师资格考试成绩单 财务管理 经济法 中级会计实务",
    "工作证明 自{y}年至今在本单位从事会计工作，表现良好",
    "统一社会信用代码 91210{n:04d}MA0{n:05d}X 营业执照副本",
    "身份证正反面复印件 仅供会计人员信息采集使用",
    "学位证书 管理学学士 {y}年",
]
CERTIFICATE_PHRASES = ["会计专业技术资格", "初级", "中级", "高级会计师", "继续教育", "会计专业技术资格证书（中级）",
                       "东北财经大学", "从事会计工作", "营业执照", "专业科目"]


def generate(count, rng):
    """Return count synthetic dossiers with names, Liaoning employers and a line or two of attachment text."""
    documents = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.04:
            name = rng.choice(COMPOUND) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        elif roll < 0.08:
            name = rng.choice(MINORITY) + rng.choice("·・") + rng.choice(MINORITY)
        else:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        city = rng.choice(list(DISTRICTS))
        employer = city + rng.choice(DISTRICTS[city].split()) + rng.choice(BRANDS) + rng.choice(KINDS)
        text = " ".join(rng.choice(LINES).format(y=rng.randint(2000, 2024), n=rng.randint(0, 99999))
                        for _ in range(rng.choice((1, 2))))
        documents.append({"id": f"g{number:06d}", "name": name, "employer": employer, "text": text})
    return documents


def generate_queries(documents, count, rng):
    """Return (kind, text) queries of every kind, cut from the documents so most find something."""
    queries = []
    kinds = ["name", "name", "compound_surname", "single_char", "minority", "employer_fragment", "certificate",
             "mixed", "several_pieces"]
    while len(queries) < count:
        kind = kinds[len(queries) % len(kinds)]
        document = rng.choice(documents)
        if kind == "name":
            text = rng.choice(documents)["name"]
            text = text if "·" not in text and "・" not in text else text[:3]
        elif kind == "compound_surname":
            text = rng.choice(COMPOUND)
        elif kind == "single_char":
            text = rng.choice(SURNAMES + GIVEN)
        elif kind == "minority":
            text = rng.choice(MINORITY + [a + "·" + b for a in MINORITY[:3] for b in MINORITY[:3]])
        elif kind == "employer_fragment":
            employer = document["employer"]
            start = rng.randrange(len(employer) - 2)
            text = employer[start:start + rng.choice((2, 3, 4, 6))]
        elif kind == "certificate":
            text = rng.choice(CERTIFICATE_PHRASES)
        elif kind == "mixed":
            words = re.findall(r"[A-Za-z0-9]+年?", document["text"] + " " + document["employer"])
            text = rng.choice(words + ["ABC科技有限公司", "XYZ商贸"])
        else:
            text = document["name"][:2] + " " + document["employer"][3:5]
        queries.append((kind, text))
    return queries


# ---------------------------------------------------------------- measuring

def build(analyzer, documents, folder):
    """Index documents on disk; return (index, CPU seconds, bytes)."""
    schema = Schema(id=ID(stored=True, unique=True), **{f: TEXT(analyzer=analyzer, phrase=True) for f in FIELDS})
    folder.mkdir(parents=True)
    index = create_in(str(folder), schema)
    started = time.process_time()
    # A pool this size never spills to disk at 20,000 documents; spilling doubles the time.
    writer = index.writer(limitmb=1024)
    for document in documents:
        writer.add_document(**document)
    writer.commit()
    seconds = time.process_time() - started
    size = sum(path.stat().st_size for path in folder.iterdir())
    return index, seconds, size


def evaluate(index, build_query, documents, queries):
    """Return micro recall, precision, exact-query share, per-kind recall and CPU ms for the top 10."""
    normals = [[normalize(document[f]) for f in FIELDS] for document in documents]
    hit = relevant = found_total = exact = 0
    # Against a pure substring scan too, where 2019 would also find Z2019210000123.
    substring_hit = substring_relevant = 0
    by_kind = defaultdict(lambda: [0, 0])
    latencies = defaultdict(list)
    misses = []
    with index.searcher() as searcher:
        for kind, text in queries:
            query = build_query(FIELDS, text)
            started = time.process_time()
            searcher.search(query, limit=10)
            latencies[kind].append((time.process_time() - started) * 1000)
            found = {h["id"] for h in searcher.search(query, limit=None)}
            expected = reference_scan(documents, normals, text)
            substring = reference_scan(documents, normals, text, whole_words=False)
            substring_hit += len(found & substring)
            substring_relevant += len(substring)
            hit += len(found & expected)
            relevant += len(expected)
            found_total += len(found)
            exact += found == expected
            by_kind[kind][0] += len(found & expected)
            by_kind[kind][1] += len(expected)
            if found != expected and len(misses) < 4:
                misses.append(f"{text}: -{len(expected - found)} +{len(found - expected)}")
    return {
        "recall": hit / relevant if relevant else 1.0,
        "precision": hit / found_total if found_total else 1.0,
        "exact": exact / len(queries),
        "substring_recall": substring_hit / substring_relevant if substring_relevant else 1.0,
        "substring_precision": substring_hit / found_total if found_total else 1.0,
        "by_kind": {k: (h / r if r else 1.0) for k, (h, r) in by_kind.items()},
        "latencies": latencies,
        "misses": misses,
    }


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main():
    """Print the measurements of every candidate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()

    relevance = yaml.safe_load(RELEVANCE.read_text("utf-8"))
    relevance_documents = relevance["documents"]
    relevance_queries = [(q["kind"], q["query"]) for q in relevance["queries"]]
    rng = random.Random(arguments.seed)
    generated = generate(arguments.documents, rng)
    generated_queries = generate_queries(generated, arguments.queries, rng)

    normals = [[normalize(d[f]) for f in FIELDS] for d in relevance_documents]
    differ = [text for _, text in relevance_queries
              if reference_scan(relevance_documents, normals, text)
              != reference_scan(relevance_documents, normals, text, whole_words=False)]
    print(f"relevance set: {len(relevance_documents)} documents, {len(relevance_queries)} queries; "
          f"generated: {len(generated)} documents, {len(generated_queries)} queries")
    print(f"queries where whole-word Latin/digit matching differs from a pure substring scan: {differ}")

    with tempfile.TemporaryDirectory() as folder:
        for number, (label, analyzer, build_query) in enumerate(candidates()):
            small, _, _ = build(analyzer, relevance_documents, Path(folder) / f"r{number}")
            on_set = evaluate(small, build_query, relevance_documents, relevance_queries)
            large, seconds, size = build(analyzer, generated, Path(folder) / f"g{number}")
            on_generated = evaluate(large, build_query, generated, generated_queries)
            every = [ms for values in on_generated["latencies"].values() for ms in values]
            print(f"\n== {label}")
            print(f"  relevance set: recall {on_set['recall']:.3f} precision {on_set['precision']:.3f} "
                  f"exact queries {on_set['exact']:.1%}; vs pure substring: recall "
                  f"{on_set['substring_recall']:.3f} precision {on_set['substring_precision']:.3f}")
            print("    recall by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in on_set["by_kind"].items()))
            if on_set["misses"]:
                print("    e.g. " + "; ".join(on_set["misses"]))
            print(f"  generated: recall {on_generated['recall']:.3f} precision {on_generated['precision']:.3f} "
                  f"exact queries {on_generated['exact']:.1%}; vs pure substring: recall "
                  f"{on_generated['substring_recall']:.3f} precision {on_generated['substring_precision']:.3f}")
            with large.searcher() as searcher:
                reader = searcher.reader()
                postings = sum(reader.doc_frequency(f, t) for f, t in reader.all_terms() if f in FIELDS)
            print(f"    build {seconds:.1f} s CPU = {len(generated) / seconds:.0f} docs/s, "
                  f"{postings / 1e6:.2f} M postings, index {size / 2**20:.1f} MiB, query p50 {statistics.median(every):.2f} ms "
                  f"p99 {percentile(every, 0.99):.2f} ms CPU (top 10)")
            print("    p50 by kind: " + ", ".join(f"{k} {statistics.median(v):.2f}"
                                               for k, v in on_generated["latencies"].items()))
            if on_generated["misses"]:
                print("    e.g. " + "; ".join(on_generated["misses"]))


if __name__ == "__main__":
    main()
