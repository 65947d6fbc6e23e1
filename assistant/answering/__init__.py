"""Question → cited answer. `pipeline` runs the steps once per question: follow-ups are resolved
(`followup`), the question understood (`query`, with the learned `intent` model and `places`),
items retrieved (`retrieve`, with the learned `relevance` model), and the answer composed —
extractively (`answer`) or by a language model whose citations are validated (`chain`)."""
