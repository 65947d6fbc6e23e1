"""Documents → items. Each format's reader yields the same located `Row`s (`rows`); the parser
reads them by structure (title lines, `序号` header rows, numbered rows), never by exact strings,
and every error names the file and line, page or cell. `diff` compares two versions of a list."""
