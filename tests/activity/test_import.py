"""CSV import (encodings, header mapping, dry run, per-row errors, no half-written rows, no
lastActivityAt) and export; Japanese data hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from renkei.cli import app
from renkei.core.hygiene import company_key, lookup_postcode, normalize_width, parse_phone
from renkei.errors import InputError
from renkei.marketing.importer import ProspectImporter, decode, export_prospects
from renkei.marketing.service import ProspectService
from renkei.store import tables as t

from .helpers import T0, clock, get, prospect

CSV = (
    "メールアドレス,姓,会社名,電話番号,郵便番号,都道府県,メモ欄\r\n"
    "ＳＡＴＯ＠example.jp,佐藤,ｻﾝﾌﾟﾙ株式会社,０３－１２３４－５６７８,100-0001,東京都,x\r\n"
    "bad-email,鈴木,,,,,\r\n"
    "ito@example.jp,伊藤,(株)イトウ,06-1234-5678,530-0001,東京都,\r\n"
    "kato@example.jp,加藤,,,,,\r\n"
)


def test_hygiene() -> None:
    assert normalize_width("ＡＢＣ　１２３ ｶﾌﾞｼｷｶﾞｲｼｬ") == "ABC 123 カブシキガイシャ"
    phone = parse_phone("０３（１２３４）５６７８")
    assert (phone.e164, phone.national) == ("+81312345678", "03-1234-5678") if phone else False
    assert parse_phone("123") is None
    assert (
        lookup_postcode("５３００００１") is not None and lookup_postcode("530-0001").prefecture == "大阪府"
    )  # type: ignore[union-attr]
    assert {
        company_key(n)
        for n in ("株式会社サンプル", "㈱サンプル", "（株）サンプル", "サンプル 株式会社", "サンプル")
    } == {"サンプル"}
    assert {company_key(n) for n in ("Sample Co., Ltd.", "SAMPLE Inc.", "sample K.K.")} == {"sample"}


def test_encodings_detected() -> None:
    text = "メールアドレス,会社名\r\na@example.jp,株式会社サンプル①\r\n"
    assert decode(text.encode("utf-8")) == (text, "utf-8")
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")) == (text, "utf-8-sig")
    assert decode(text.encode("cp932")) == (text, "cp932")  # ① is CP932, not plain Shift_JIS


def test_import_dry_run_then_real(engine: Engine) -> None:
    clk = clock()
    with engine.begin() as conn:
        conn.execute(
            t.prospect_account.insert().values(
                name="株式会社サンプル", isDeleted=False, createdAt=T0, updatedAt=T0
            )
        )
    existing = prospect(engine, clk, "kato@example.jp", lastName="加藤", company="元の会社")
    importer = ProspectImporter(engine, clock=clk)
    data = CSV.encode("cp932")
    preview = importer.run(data, dry_run=True).to_dict()
    assert {k: preview[k] for k in ("dryRun", "encoding", "rows", "created", "updated", "ignoredColumns")} == {
        "dryRun": True, "encoding": "cp932", "rows": 4, "created": 1, "updated": 1, "ignoredColumns": ["メモ欄"],
    }  # fmt: skip
    assert preview["errors"] == [
        {"row": 2, "email": "bad-email", "errors": ["email: invalid email address: 'bad-email'"]},
        {"row": 3, "email": "ito@example.jp", "errors": ["zip: 530-0001 is in 大阪府, not 東京都"]},
    ]
    assert len(ProspectService(engine).list()) == 1  # nothing written
    report = importer.run(data, keep_existing=True).to_dict()
    assert (report["created"], report["updated"], len(report["errors"])) == (1, 1, 2)
    sato = ProspectService(engine).find("sato@example.jp")
    assert {
        k: sato[k]
        for k in (
            "email",
            "company",
            "phone",
            "zip",
            "state",
            "source",
            "lastActivityAt",
            "prospectAccountId",
        )
    } == {
        "email": "SATO@example.jp",
        "company": "サンプル株式会社",
        "phone": "03-1234-5678",
        "zip": "100-0001",
        "state": "東京都",
        "source": "Import",
        "lastActivityAt": None,
        "prospectAccountId": 1,
    }  # fmt: skip  (the entered company name is kept; it matched the account 株式会社サンプル by its key)
    assert get(engine, existing)["company"] == "元の会社"  # --keep-existing fills blanks only
    assert ProspectService(engine).find_by_email("ito@example.jp") == []  # the bad row is not half-written


def test_import_export_cli(cli_env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    source = tmp_path / "list.csv"
    source.write_bytes(b"\xef\xbb\xbf" + "Email Address,Last\r\nmori@example.jp,森\r\n".encode())
    result = runner.invoke(
        app,
        [
            "prospect",
            "import",
            str(source),
            "--map",
            "Email Address=email",
            "--map",
            "Last=lastName",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["created"] == 1
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["prospect", "export", "--bom", "--fields", "email,lastName", "-o", str(out), "--json"]
    )
    assert json.loads(result.stdout) == {"path": str(out), "rows": 1}
    assert out.read_bytes() == b"\xef\xbb\xbf" + "email,lastName\r\nmori@example.jp,森\r\n".encode()
    bad = tmp_path / "bad.csv"
    bad.write_text("Email Address\r\nnope\r\n", encoding="utf-8")
    result = runner.invoke(app, ["prospect", "import", str(bad), "--map", "Email Address=email", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["errors"][0]["row"] == 1
    result = runner.invoke(app, ["activity", "export", "--json", "-o", str(tmp_path / "a.csv")])
    assert json.loads(result.stdout)["rows"] == 0


def test_export_rejects_unknown_field(sqlite_engine: Engine) -> None:
    with pytest.raises(InputError, match="unknown prospect fields: nope"):
        export_prospects(sqlite_engine, fields=["nope"])
