"""Importers: real or external datasets mapped onto the foryou schema (`foryou.data.schema`).

One function per source, each `(src: Path) -> Dataset`, registered in `IMPORTERS`: a thin mapping over
the shared readers, table builders and the one path to a Dataset in `importers.common`. `MAPPINGS`
holds one Markdown paragraph per source describing exactly how it maps (the README includes it).
`import_interactions` maps any file of interactions through a column mapping (README, "Bring your own
data"); it needs that mapping, so it is not one of `IMPORTERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from foryou.data.dataset import Dataset
from foryou.data.importers.higgs import import_higgs
from foryou.data.importers.interactions import import_interactions
from foryou.data.importers.lastfm import import_lastfm
from foryou.data.importers.minirecsys import import_minirecsys
from foryou.data.importers.movielens import import_movielens

IMPORTERS: dict[str, Callable[[Path], Dataset]] = {
    "minirecsys": import_minirecsys,
    "lastfm": import_lastfm,
    "higgs": import_higgs,
    "movielens": import_movielens,
}

MAPPINGS: dict[str, str] = {
    "minirecsys": (
        "**minirecsys** (Parquet `users`, `tweets`, `follows`, `interactions` of the mini-recsys mimic): "
        "`users` → users (`person`, handle `user<id>`, `created_at` = the dataset's first interaction time "
        "− `account_age_days`·86400, clipped at 0). `tweets` → original posts (`tweet_id`, `author_id`; "
        "`topic` = index of `category` in the sorted distinct categories; `has_media`, `has_link` as given; "
        "`length` = `text_length`; `is_nsfw` = `nsfw_score` ≥ 0.5, `is_toxic` = `toxicity_score` ≥ 0.5, "
        "spam/misinfo false; `created_at` = min(first interaction on the tweet, last interaction time − "
        "`hours_old`·3600), clipped at 0). `follows`: `follower_id` → `src_id`, `followed_id` → `dst_id`, "
        "`created_at` = the first interaction time (unknown); `follow_weight` dropped; self-follows and "
        "duplicates dropped. `interactions` → engagements (value 1) with `like`→like, `retweet`→repost, "
        "`reply`→reply, `click`→click (other types are dropped and counted in the notes); exact duplicate "
        "keys dropped. Dropped as leaks: `engagement_prob` (the generator's label probability) and "
        "`quality_score` (a generator latent); their `split` column is not kept (we split by time). "
        "Positives only, no impressions."
    ),
    "lastfm": (
        "**lastfm** (HetRec 2011 Last.fm 2k, tab-separated with headers, `tags.dat` Latin-1): listeners → "
        "users (`person`, ids kept). Each artist → one `catalog` account (id = artist id + offset, the next "
        "power of ten above the largest listener id, i.e. 10000) and one original post by it (`post_id` = "
        "artist id; `topic` = index of the artist's most frequent tag among the 30 most frequent tags of "
        "`user_taggedartists`, else −1; flags false, length 0). `user_friends` → follows as listed (both "
        "directions are listed), deduplicated, at the dataset start. Each `user_taggedartists` row dated "
        "before 2005 (bogus years) or on an invalid date is a bad row: counted and shown with its line number "
        "in the notes, never imported; the rest become `like` engagements at 00:00 UTC of "
        "day/month/year, one per (user, artist, date) however many tags, value = the user's play count of "
        "the artist from `user_artists` (1 when absent). Play-count pairs without a dated tag event have no "
        "date and are not imported as events (counted in the notes, with how many were tagged only on bad "
        "rows). A post (and its catalog account) is created "
        "at its first engagement, a listener at their first like or friendship (friendships are dated at the "
        "dataset start), else at the dataset start. Positives only, "
        "no impressions."
    ),
    "higgs": (
        "**higgs** (SNAP Higgs Twitter, `higgs-activity_time.txt.gz`: userA userB unix_time RT|MT|RE, "
        "userA acts on userB): every id seen → users (`person`, created at the dataset start). Tweets are "
        "not in the data, so each (userB, UTC day) that received activity becomes one synthetic original "
        "post by userB (topic −1, flags false, length 0), created at its earliest event, `post_id` "
        "numbered from 1 in (created_at, author) order. Events → engagements by userA on that post, value 1: "
        "RT → repost, RE → reply, MT (mention) → profile_click; exact duplicate keys dropped. No follows "
        "(the follower graph is not in this copy): any graph must be built from the training window only, "
        "to avoid leaks. Positives only, no impressions."
    ),
    "movielens": (
        "**movielens** (MovieLens 100K, `u.data` tab-separated user item rating time; `u.item` "
        "`|`-separated Latin-1): raters → users (`person`, ids kept, created at their first rating). Each "
        "movie → one `catalog` account (id = item id + 1000, the next power of ten above the largest user "
        "id, handle = title) and one original post (`post_id` = item id, `topic` = first genre flag set, "
        "0–18 in `u.genre` order, else −1; created at its first rating). Every rating → a `click` with "
        "value = rating; a rating ≥ 4 also → `like`, a rating ≤ 2 also → `not_interested` (same time and "
        "value). Explicit dislikes exist, so not positives-only; no impressions."
    ),
}

__all__ = [
    "IMPORTERS",
    "MAPPINGS",
    "import_higgs",
    "import_interactions",
    "import_lastfm",
    "import_minirecsys",
    "import_movielens",
]
