"""The Python peer of the side-by-side benchmark: a plain poller doing churn-alert's job.

Fetches the outflow window page by page (urllib, json), remembers losses in SQLite, groups the
new ones by staff member, renders markdown digests with str.format, packs them into messages
of at most 4096 bytes and posts them to the robot. No pacing, no storm protection (the
churn-alert run it is compared with has both off). Standard library only.

usage: python3 peer.py BASE_URL ROBOT_URL DB_PATH
"""

import json
import sqlite3
import sys
import time
import urllib.parse
import urllib.request

LIMIT = 4096
HEAD = "## 客户流失提醒{part}\n> 共 {total} 位客户流失，涉及 {staff} 位员工\n"
GROUP = "\n**{name}** 流失 {count} 位\n"
ENTRY = "- {name}{remark}\n  <font color=\"comment\">{time} · {by}</font>\n"
MARKUP = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "*": "＊", "_": "＿",
                        "`": "｀", "#": "＃", "\n": " ", "&": "＆"})


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def local(seconds):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds + 8 * 3600))


def main():
    base, robot, db_path = sys.argv[1:4]
    token = call(base + "/open-api/access_token/get",
                 {"corp_id": "sim-corp", "secret": "sim-secret"})["access_token"]
    now = int(time.time())
    db = sqlite3.connect(db_path)
    db.execute("create table if not exists seen (k text primary key)")
    new, offset = [], 0
    while True:
        query = urllib.parse.urlencode({"start_time": now - 48 * 3600, "end_time": now,
                                        "limit": 100, "offset": offset, "access_token": token})
        page = call(base + "/open-api/external_user/list/outflow?" + query)
        items = page.get("external_user_list") or []
        for item in items:
            key = "%s|%s|%s" % (item["outflow_at"], item["id"], item["staff"]["id"])
            if db.execute("insert or ignore into seen values (?)", (key,)).rowcount:
                new.append(item)
        db.commit()
        offset += len(items)
        if not items or offset >= page.get("total_count", 0):
            break

    groups = {}
    for item in new:
        staff = item["staff"]
        groups.setdefault((staff["name"], staff["id"]), []).append(item)
    blocks = []
    for (name, _), items in sorted(groups.items()):
        items.sort(key=lambda i: -i["outflow_at"])
        blocks.append(GROUP.format(name=name.translate(MARKUP), count=len(items)))
        for item in items:
            remark = item["staff_relation"].get("remark") or ""
            blocks.append(ENTRY.format(
                name=item["name"].translate(MARKUP),
                remark="（备注：%s）" % remark.translate(MARKUP) if remark and remark != item["name"] else "",
                time=local(item["outflow_at"]),
                by="客户删除了员工" if item["staff_relation"].get("delete_by") == "external_user" else "原因未知"))
    parts, current = [], []
    head = HEAD.format(part=" (99/99)", total=len(new), staff=len(groups))
    size = len(head.encode())
    for block in blocks:
        length = len(block.encode())
        if current and size + length > LIMIT:
            parts.append(current)
            current, size = [], len(head.encode())
        current.append(block)
        size += length
    if current:
        parts.append(current)
    for i, blocks in enumerate(parts):
        part = " (%d/%d)" % (i + 1, len(parts)) if len(parts) > 1 else ""
        content = HEAD.format(part=part, total=len(new), staff=len(groups)) + "".join(blocks)
        answer = call(robot, {"msgtype": "markdown", "markdown": {"content": content}})
        if answer.get("errcode") != 0:
            sys.exit("robot refused: %s" % answer)
    print("peer: %d new losses, %d messages" % (len(new), len(parts)))


if __name__ == "__main__":
    main()
