"""Hidden labelled sentiment sentences generated from templates (trusted side, seeded)."""
import random
import re

POSITIVE = ["wonderful", "brilliant", "delightful", "moving", "superb", "charming", "funny", "gripping",
            "beautiful", "touching", "clever", "excellent", "enjoyable", "inspiring", "masterful", "warm",
            "hilarious", "stunning", "witty", "thrilling", "heartfelt", "lovely", "engaging", "remarkable",
            "powerful", "smart", "fresh", "magnificent", "joyful", "compelling"]
NEGATIVE = ["dull", "boring", "tedious", "clumsy", "awful", "dreadful", "lifeless", "pointless",
            "predictable", "silly", "shallow", "bland", "messy", "painful", "forgettable", "lazy", "stupid",
            "tiresome", "flat", "ugly", "annoying", "hollow", "incoherent", "sluggish", "wretched", "stale",
            "unbearable", "mediocre", "sloppy", "joyless"]
SUBJECTS = ["the film", "this movie", "the story", "the script", "the acting", "the director's new picture",
            "the plot", "the cast", "the ending", "the dialogue", "the whole thing", "the performances",
            "this comedy", "the drama", "the screenplay", "the second half", "the sequel", "her latest film",
            "his performance", "the documentary"]
NOUNS = ["film", "movie", "story", "comedy", "drama", "thriller", "picture", "romance", "documentary", "script"]
ADVERBS = ["", "", "", "truly ", "utterly ", "really ", "quite ", "simply ", "genuinely ", "thoroughly "]
TEMPLATES = ["{S} is {a}{x}.", "{S} was {a}{x} and {y}.", "a {a}{x}, {y} {n}.", "what a {x} {n}!",
             "i found {s} {a}{x}.", "{S} feels {a}{x} from start to finish.", "an {a}{x} {n} with a {y} cast.",
             "{S} is {a}{x}, and the music is {y}.", "overall, {s} is {a}{x}.", "{S} turns out to be {a}{x}.",
             "it is a {x} and {y} {n}.", "{S} left me feeling that it was {a}{x}."]


def sentiment_templates(seed: int, n: int) -> tuple[list[str], list[int]]:
    """n sentences, half positive (1) and half negative (0), shuffled; no sentence twice."""
    rng = random.Random(seed)
    texts, labels, seen = [], [], set()
    while len(texts) < n:
        label = len(texts) % 2
        words = POSITIVE if label else NEGATIVE
        x, y = rng.sample(words, 2)
        s = rng.choice(SUBJECTS)
        text = rng.choice(TEMPLATES).format(S=s[0].upper() + s[1:], s=s, a=rng.choice(ADVERBS), x=x, y=y,
                                            n=rng.choice(NOUNS))
        text = re.sub(r"\ban? (?=[aeiou])", "an ", re.sub(r"\ban? (?=[^aeiou])", "a ", text))
        if text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    order = list(range(n))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]

