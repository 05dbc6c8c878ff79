"""Language codes and names: ISO 639-1, ISO 639-2 (B and T forms) and English names, for the ~100
languages Gladia transcribes.

Containers tag streams with ISO 639-2 ("eng", "fre"/"fra", "ger"/"deu"); media servers name subtitle files
with 639-1 or 639-2 codes or English names ("Movie.en.srt", "Movie.eng.srt", "Movie.English.srt");
Gladia and the config speak 639-1 ("en"). Everything here is pure and stdlib-only, so config, media and
the pipeline may all use it.
"""

from __future__ import annotations

__all__ = ["canonical", "english_name", "same_language"]

# One language a line: its codes (the first is the one Gladia uses: "jw" for Javanese where ISO says
# "jv"), then its English names, the first being the one shown to users.
_TABLE = """
af afr Afrikaans
am amh Amharic
ar ara Arabic
as asm Assamese
az aze Azerbaijani
ba bak Bashkir
be bel Belarusian
bg bul Bulgarian
bn ben Bengali Bangla
bo bod tib Tibetan
br bre Breton
bs bos Bosnian
ca cat Catalan
cs ces cze Czech
cy cym wel Welsh
da dan Danish
de deu ger German
el ell gre Greek
en eng English
es spa Spanish Castilian
et est Estonian
eu eus baq Basque
fa fas per Persian Farsi
fi fin Finnish
fo fao Faroese
fr fra fre French
gl glg Galician
gu guj Gujarati
ha hau Hausa
haw Hawaiian
he heb Hebrew
hi hin Hindi
hr hrv Croatian
ht hat Haitian
hu hun Hungarian
hy hye arm Armenian
id ind Indonesian
is isl ice Icelandic
it ita Italian
ja jpn Japanese
jw jv jav Javanese
ka kat geo Georgian
kk kaz Kazakh
km khm Khmer
kn kan Kannada
ko kor Korean
la lat Latin
lb ltz Luxembourgish
ln lin Lingala
lo lao Lao
lt lit Lithuanian
lv lav Latvian
mg mlg Malagasy
mi mri mao Maori
mk mkd mac Macedonian
ml mal Malayalam
mn mon Mongolian
mr mar Marathi
ms msa may Malay
mt mlt Maltese
my mya bur Burmese
ne nep Nepali
nl nld dut Dutch Flemish
nn nno Nynorsk
no nor nob nb Norwegian Bokmal
oc oci Occitan
pa pan Punjabi
pl pol Polish
ps pus Pashto
pt por Portuguese
ro ron rum Romanian
ru rus Russian
sa san Sanskrit
sd snd Sindhi
si sin Sinhala Sinhalese
sk slk slo Slovak
sl slv Slovenian
sn sna Shona
so som Somali
sq sqi alb Albanian
sr srp Serbian
su sun Sundanese
sv swe Swedish
sw swa Swahili
ta tam Tamil
te tel Telugu
tg tgk Tajik
th tha Thai
tk tuk Turkmen
tl tgl fil Tagalog Filipino
tr tur Turkish
tt tat Tatar
uk ukr Ukrainian
ur urd Urdu
uz uzb Uzbek
vi vie Vietnamese
yi yid Yiddish
yo yor Yoruba
zh zho chi Chinese
"""


def _load() -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, frozenset[str]]]:
    codes: dict[str, str] = {}      # any code -> the language's first code
    names: dict[str, str] = {}      # any English name, lowercase -> first code
    shown: dict[str, str] = {}      # first code -> the name shown
    groups: dict[str, frozenset[str]] = {}
    for line in _TABLE.strip().splitlines():
        words = line.split()
        tags = [w for w in words if w.islower()]
        titles = [w for w in words if not w.islower()]
        for tag in tags:
            codes[tag] = tags[0]
            groups[tag] = frozenset(tags)
        for title in titles:
            names[title.lower()] = tags[0]
        shown[tags[0]] = titles[0]
    return codes, names, shown, groups


_CODES, _NAMES, _SHOWN, _GROUPS = _load()


def _base(code: str) -> str:
    """"pt-BR" -> "pt", "en_US" -> "en", " ENG " -> "eng": the language part of a tag, lowercase."""
    return code.replace("_", "-").split("-")[0].strip().lower()


def canonical(token: str) -> str | None:
    """Given a 2- or 3-letter code (a region such as "-BR" ignored) or an English name, any case, return
    the language's code as Gladia writes it ("eng" -> "en", "fre" -> "fr", "English" -> "en"); None when
    it names no language in the table ("und", "forced", "")."""
    code = _CODES.get(_base(token))
    if code is not None:
        return code
    return _NAMES.get(token.strip().lower())


def english_name(code: str) -> str:
    """The English name of a language given by any of its codes ("fre" -> "French"); the code itself
    when it is not in the table."""
    found = canonical(code)
    return _SHOWN[found] if found is not None else code


def same_language(tag: str | None, wanted: str) -> bool:
    """True when a stream's language tag names the language `wanted` ("en" matches "eng", "fre" matches
    "fra"; a region such as "pt-BR" is ignored on both sides). Codes outside the table match themselves."""
    if not tag:
        return False
    have, want = _base(tag), _base(wanted)
    return have == want or have in _GROUPS.get(want, frozenset())
