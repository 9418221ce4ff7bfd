"""sacreBLEU's published test sentences (test_bleu.py, test_sentence_bleu.py), shared by the public checks."""

HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
#: per hypothesis (sacreBLEU's test gives the two reference streams; this is their transpose)
REFS = [["The dog bit the man.", "The dog had bit the man."], ["It was not unexpected.", "No one was surprised."],
        ["The man bit him first.", "The man had bitten the dog."]]
SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
REF = "producţia de zahăr brut se exprimă în zahăr alb;"
