"""The sample store's catalogue (30 products of a small coffee shop) and its customers' locales
and names, in their own scripts."""
from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass

# Reserved example domains (RFC 2606): a generated address can never reach a real inbox.
DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    variant_id: str
    sku: str
    title: str
    cents: int
    collections: tuple[str, ...]
    weight: int  # popularity


def _catalogue() -> tuple[Product, ...]:
    rows = [  # (sku, title, price, collections, popularity)
        ("COF-HOUSE", "House Blend 250g", "14.50", ("coffee",), 30),
        ("COF-ETH", "Ethiopia Yirgacheffe 250g", "17.90", ("coffee",), 18),
        ("COF-COL", "Colombia Huila 250g", "16.50", ("coffee",), 16),
        ("COF-DECAF", "Decaf Swiss Water 250g", "15.50", ("coffee",), 8),
        ("COF-ESP1K", "Espresso Roast 1kg", "44.00", ("coffee",), 10),
        ("COF-GUA", "Guatemala Antigua 250g", "16.90", ("coffee",), 9),
        ("COF-KEN", "Kenya AA 250g", "19.50", ("coffee",), 8),
        ("COF-SUM", "Sumatra Mandheling 250g", "17.50", ("coffee",), 6),
        ("COF-BRA", "Brazil Santos 250g", "13.90", ("coffee",), 10),
        ("COF-COLD", "Cold Brew Blend 250g", "15.90", ("coffee",), 7),
        ("BRW-V60", "Pour-Over Dripper", "24.00", ("brewing",), 6),
        ("BRW-FILT", "Paper Filters x100", "6.50", ("brewing",), 9),
        ("BRW-PRESS", "French Press 800ml", "39.00", ("brewing",), 5),
        ("BRW-KETTLE", "Gooseneck Kettle", "59.00", ("brewing",), 3),
        ("BRW-GRIND", "Burr Grinder", "129.00", ("brewing",), 2),
        ("BRW-AERO", "AeroPress", "39.95", ("brewing",), 4),
        ("BRW-MOKA", "Moka Pot 6 cup", "34.00", ("brewing",), 3),
        ("BRW-JAR", "Cold Brew Jar 1l", "29.00", ("brewing",), 2),
        ("TEA-SEN", "Sencha 100g", "12.00", ("tea",), 5),
        ("TEA-EARL", "Earl Grey 100g", "10.50", ("tea",), 6),
        ("TEA-CHAM", "Chamomile 50g", "9.50", ("tea",), 3),
        ("TEA-CHAI", "Chai Masala 100g", "11.50", ("tea",), 4),
        ("TEA-MATCHA", "Ceremonial Matcha 50g", "24.00", ("tea",), 3),
        ("ACC-MUG", "Ceramic Mug", "16.00", ("accessories",), 6),
        ("ACC-TUMB", "Travel Tumbler", "28.00", ("accessories",), 4),
        ("ACC-SCALE", "Digital Scale", "35.00", ("accessories", "brewing"), 2),
        ("ACC-FROTH", "Milk Frother", "22.00", ("accessories",), 3),
        ("GFT-DISC", "Coffee Discovery Box", "49.00", ("gifts", "coffee"), 5),
        ("GFT-TEA", "Tea Sampler", "29.00", ("gifts", "tea"), 3),
        ("GFT-KIT", "Brewing Starter Kit", "79.00", ("gifts", "brewing"), 2),
    ]
    return tuple(
        Product(id=str(8_400_000_001 + i), variant_id=str(44_100_000_001 + i), sku=f"KW-{sku}", title=title,
                cents=_cents(price), collections=cols, weight=w)
        for i, (sku, title, price, cols, w) in enumerate(rows)
    )


def _cents(price: str) -> int:
    whole, _, frac = price.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0"))


CATALOGUE = _catalogue()
PRODUCT_CUM = tuple(itertools.accumulate(p.weight for p in CATALOGUE))
COFFEES = tuple(p for p in CATALOGUE if p.collections == ("coffee",))


def _latin(names: str) -> tuple[tuple[str, str], ...]:
    """(display, ascii handle) pairs for Latin-script names; accents drop out of the handle."""
    return tuple((n, unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode().lower()) for n in names.split())


# locale -> (weight, first names, last names); non-Latin scripts carry a romanized handle for the email.
LOCALES = {
    "en": (55, _latin("James Olivia Liam Emma Noah Ava Sophia Mason Harper Ethan Grace Chloe"),
           _latin("Smith Johnson Brown Taylor Wilson Clarke Walker O'Neill Murphy Patel")),
    "fr": (10, _latin("Zoé Léa Chloé Hélène François Jérôme Amélie Théo Gaëlle Noël"),
           _latin("Lefèvre Dubois Moreau Girard Bérard Faure Rousseau")),
    "de": (9, _latin("Jürgen Jörg Käthe Björn Lukas Mia Sören Anja Günter"),
           _latin("Müller Schäfer Groß Weiß Köhler Becker")),
    "es": (8, _latin("José María Sofía Nicolás Inés Martín Lucía Álvaro"),
           _latin("García Núñez Peña Rodríguez Ibáñez Martínez")),
    "pt-BR": (5, _latin("João Conceição Luíza Gonçalo Ana Tânia"),
              _latin("Gonçalves Simões Araújo Souza")),
    "ar": (5, (("محمد", "mohammed"), ("فاطمة", "fatima"), ("أحمد", "ahmed"), ("ليلى", "layla"), ("يوسف", "youssef"), ("مريم", "maryam")),
           (("العلي", "alali"), ("حداد", "haddad"), ("خوري", "khoury"), ("منصور", "mansour"))),
    "he": (4, (("נועה", "noa"), ("דוד", "david"), ("תמר", "tamar"), ("יוסף", "yosef"), ("מיכל", "michal"), ("אריאל", "ariel")),
           (("כהן", "cohen"), ("לוי", "levi"), ("מזרחי", "mizrahi"), ("פרץ", "peretz"))),
    "ja": (4, (("陽翔", "haruto"), ("さくら", "sakura"), ("結衣", "yui"), ("蓮", "ren"), ("ひなた", "hinata"), ("翔太", "shota")),
           (("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"))),
}
LOCALE_NAMES = tuple(LOCALES)
LOCALE_CUM = tuple(itertools.accumulate(w for w, _, _ in LOCALES.values()))
