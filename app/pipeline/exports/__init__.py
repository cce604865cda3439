"""Exports: what a researcher takes away from a run or a project.

Records as CSV in a spreadsheet dialect (`csvx`) or JSON Lines (`jsonl`), each row with its
provenance and streamed with flat memory (`records`; for a project, `sources` picks the run that
serves each document); texts as TXT with a page separator (`text`), PAGE XML 2019 (`pagexml`)
and ALTO v4 (`alto`) per page with line coordinates; everything of a run in one zip with a
manifest (`bundle`). Every export reads the engine's output or the reviewers' (`version`).
"""
