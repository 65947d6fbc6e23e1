"""履职助手's core: duty-list documents → items → index → answers, with nothing above it.

    ingest/     documents (txt, docx, xlsx, pdf) → rows → validated `DutyItem`s; `diff`
    index/      items → generations of Chroma vectors, BM25 and situation questions; stores
    answering/  question → pipeline: resolve, understand, retrieve, compose (extractive or LLM)
    service.py  `Assistant`: load once, answer many — what every front-end calls

Front-ends (`ui/`: CLI, web app, HTTP API) and the eval suite (`eval/`) import the core; the
core never imports them (checked by `lint-imports`).
"""
