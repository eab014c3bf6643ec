"""What the personal page says, in the customer's language (English unless we have theirs),
and which way it reads."""
from __future__ import annotations

#: Languages written right to left: the page gets ``dir="rtl"``.
RTL = frozenset({"he", "iw", "ar", "fa", "ur", "yi"})

EN = {
    "hello": "Hello {name}", "hello_plain": "Hello", "offers": "Your offer", "no_offers": "No offer is waiting for you right now.",
    "code": "Code", "discount": "Discount", "expires": "Valid until", "minimum": "On orders from",
    "use": "Use it now", "forward": "Send this offer to my email", "forward_to": "It goes to {email}.",
    "forwarded": "On its way to your inbox.", "forward_done": "We already sent this offer to your email.",
    "survey": "A quick question", "answer": "Your answer", "send_answer": "Send answer",
    "answered": "Thank you for your answer.", "channel": "How should we reach you?",
    "channel_email": "By email", "channel_sms": "By text message", "save_channel": "Save my choice",
    "channel_saved": "Saved: we will use your choice.", "occasions": "Dates to remember",
    "occasion_help": "Tell us about a birthday or anniversary and we will remind you in time.",
    "kind": "Occasion", "date": "Date", "recipient": "For whom (optional)", "remind": "Remind me",
    "add_occasion": "Add date", "save_occasion": "Save", "occasion_saved": "Saved. We will remind you.",
    "unsubscribe": "Stop messages", "unsub_email": "Stop marketing emails", "unsub_sms": "Stop text messages",
    "unsubscribed": "Done: you will not get these messages any more.", "main": "Your page",
    "footer": "This page is personal to you. Please do not share its link.", "kinds": {
        "birthday": "Birthday", "anniversary": "Anniversary", "wedding": "Wedding", "other": "Other"},
    "busy": "Too many answers from this page; please try again later.",
    "bad_channel": "Please choose one of the ways offered.", "bad_occasion": "That date is not one of yours to edit.",
    "bad_date": "Please choose an occasion and a date.", "bad_choice": "Please choose one of the answers.",
    "bad_answer": "Please write an answer.",
    "mail_subject": "Your offer from {shop}", "mail_intro": "Here is the offer you asked us to send to your email.",
}

HE = {
    "hello": "שלום {name}", "hello_plain": "שלום", "offers": "ההטבה שלך", "no_offers": "אין כרגע הטבה שמחכה לך.",
    "code": "קוד", "discount": "הנחה", "expires": "בתוקף עד", "minimum": "בהזמנה מעל",
    "use": "למימוש עכשיו", "forward": "שלחו את ההטבה למייל שלי", "forward_to": "היא תישלח אל {email}.",
    "forwarded": "ההטבה בדרך לתיבת הדואר שלך.", "forward_done": "כבר שלחנו את ההטבה למייל שלך.",
    "survey": "שאלה קצרה", "answer": "התשובה שלך", "send_answer": "שליחת תשובה",
    "answered": "תודה על התשובה.", "channel": "איך נוח לך שנפנה אליך?",
    "channel_email": "במייל", "channel_sms": "בהודעת טקסט", "save_channel": "שמירת הבחירה",
    "channel_saved": "נשמר: נפנה אליך כפי שבחרת.", "occasions": "תאריכים לזכור",
    "occasion_help": "ספרו לנו על יום הולדת או יום נישואין ונזכיר לכם בזמן.",
    "kind": "אירוע", "date": "תאריך", "recipient": "עבור מי (לא חובה)", "remind": "הזכירו לי",
    "add_occasion": "הוספת תאריך", "save_occasion": "שמירה", "occasion_saved": "נשמר. נזכיר לך.",
    "unsubscribe": "הפסקת הודעות", "unsub_email": "הפסקת מיילים שיווקיים", "unsub_sms": "הפסקת הודעות טקסט",
    "unsubscribed": "בוצע: לא תקבלו עוד הודעות כאלה.", "main": "הדף שלך",
    "footer": "הדף הזה אישי. אנא אל תשתפו את הקישור.", "kinds": {
        "birthday": "יום הולדת", "anniversary": "יום נישואין", "wedding": "חתונה", "other": "אחר"},
    "busy": "יותר מדי תשובות מהדף הזה; נסו שוב מאוחר יותר.",
    "bad_channel": "נא לבחור אחת מהדרכים המוצעות.", "bad_occasion": "התאריך הזה אינו שלך לעריכה.",
    "bad_date": "נא לבחור אירוע ותאריך.", "bad_choice": "נא לבחור אחת מהתשובות.", "bad_answer": "נא לכתוב תשובה.",
    "mail_subject": "ההטבה שלך מ{shop}", "mail_intro": "הנה ההטבה שביקשת שנשלח למייל שלך.",
}

_BY_LANGUAGE = {"en": EN, "he": HE, "iw": HE}


def language(locale: str | None) -> str:
    """'he' from 'he-IL', 'he_IL' or 'HE'; 'en' when unknown."""
    return (locale or "en").replace("_", "-").split("-")[0].strip().lower() or "en"


def words(locale: str | None) -> dict:
    return _BY_LANGUAGE.get(language(locale), EN)


def direction(locale: str | None) -> str:
    return "rtl" if language(locale) in RTL else "ltr"
