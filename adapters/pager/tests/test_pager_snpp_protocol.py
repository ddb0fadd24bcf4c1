"""The SNPP client's protocol layer and the local server's RFC 1861 behaviour, command by command."""

from __future__ import annotations

import asyncio

from oohcore_pager.snpp import Reply, SnppConnection, dot_stuff, stated_length_limit
from oohcore_pager.testing import SnppTestServer


def _session(server: SnppTestServer, *lines: str) -> list[Reply]:
    async def run() -> list[Reply]:
        conn, greeting = await SnppConnection.open("127.0.0.1", server.port)
        replies = [greeting]
        try:
            for line in lines:
                verb, _, arg = line.partition(" ")
                replies.append(await conn.command(verb, arg or None))
        finally:
            await conn.close()
        return replies

    return asyncio.run(run())


def test_help_gathers_the_214_lines_before_its_250(snpp_server: SnppTestServer) -> None:
    greeting, help_, _ = _session(snpp_server, "HELP", "QUIT")
    assert greeting.code == 220
    assert help_.code == 250 and len(help_.info) == 2 and help_.info[0].startswith("Level 1")


def test_only_the_first_four_letters_count_and_case_does_not(
    snpp_server: SnppTestServer,
) -> None:
    replies = _session(snpp_server, "pager 123", "message hello", "SEND", "QUIT")
    assert [r.code for r in replies] == [220, 250, 250, 250, 221]
    assert snpp_server.pages[0].text == "hello"


def test_reset_clears_the_transaction_and_send_needs_pager_and_message(
    snpp_server: SnppTestServer,
) -> None:
    replies = _session(
        snpp_server, "PAGE 1", "MESS a", "MESS b", "RESE", "SEND", "HOLD 991301", "HOLD 260110030000",
        "LEVE 12", "ALER 1", "COVE north", "XYZZ", "QUIT",
    )  # fmt: skip
    assert [r.code for r in replies] == [
        220,
        250,
        250,
        503,
        250,
        503,
        550,
        250,
        550,
        250,
        250,
        500,
        221,
    ]
    assert snpp_server.pages == []


def test_a_level_1_server_lacks_the_level_2_commands(snpp_server: SnppTestServer) -> None:
    snpp_server.level = 1
    replies = _session(snpp_server, "LOGI a b", "DATA", "SUBJ x", "QUIT")
    assert [r.code for r in replies] == [220, 500, 500, 500, 221]


def test_dot_stuffing_and_the_stated_limit() -> None:
    assert dot_stuff("a\n.b\n.\nc") == ["a", "..b", "..", "c"]
    assert stated_length_limit(Reply(554, "Error, Message Too Long (max 80 characters)")) == 80
    assert stated_length_limit(Reply(554, "Message failed (paging terminal down)")) is None
    assert stated_length_limit(Reply(250, "Message OK (max 80)")) is None
