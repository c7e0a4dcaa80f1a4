"""The languages of the published statistics, in their published order."""

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "ru": "Russian", "fr": "French", "de": "German", "zh": "Chinese", "he": "Hebrew",
    "it": "Italian", "es": "Spanish", "ar": "Arabic", "pt": "Portuguese", "ko": "Korean", "hu": "Hungarian",
    "sa": "Sanskrit", "la": "Latin", "ja": "Japanese", "el": "Greek", "sv": "Swedish", "nl": "Dutch",
    "pl": "Polish", "vi": "Vietnamese", "fa": "Persian", "no": "Norwegian", "tr": "Turkish", "fi": "Finnish",
    "cs": "Czech", "hy": "Armenian", "da": "Danish", "bn": "Bangla", "az": "Azerbaijani", "ka": "Georgian",
    "hi": "Hindi", "id": "Indonesian",
}  # fmt: skip

# The 32-language filter of the bvv241 builders: entries for other languages are ignored.
BVV241_LANGUAGES: tuple[str, ...] = tuple(LANGUAGE_NAMES)


def parse_langs(value: str | None) -> list[str] | None:
    """`"en, zh"` -> `["en", "zh"]`; None or blank means "the default"."""
    if value is None or not value.strip():
        return None
    return list(dict.fromkeys(code.strip() for code in value.split(",") if code.strip()))
