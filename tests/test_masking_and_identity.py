"""The pure rules underneath every write: card numbers masked, identities normalised, path refs
parsed, risk and frustration terms spotted."""

from __future__ import annotations

import pytest

from handoff.kernel.errors import NotFound, Unprocessable
from handoff.kernel.masking import luhn_valid, mask_text
from handoff.kernel.settings import Settings
from handoff.services.flags import Hit, Lexicon
from handoff.services.identity import Ident, normalise, parse_ref
from handoff.services.privacy import Privacy
from schemas.common import Identity

MASKED_VISA = "**** **** **** 1111"

# -- card numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("pan, last4", [
    ("4222222222222", "2222"),            # 13 digits (old Visa)
    ("378282246310005", "0005"),          # 15 digits (Amex)
    ("4111111111111111", "1111"),         # 16 digits (Visa)
    ("6011000000000000001", "0001"),      # 19 digits
])
def test_a_luhn_valid_card_number_of_13_to_19_digits_keeps_only_its_last_four(
        pan: str, last4: str) -> None:
    assert luhn_valid(pan)
    assert mask_text(pan) == f"**** **** **** {last4}"


@pytest.mark.parametrize("written", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111 1111-1111 1111"])
def test_a_card_number_written_in_groups_with_spaces_or_dashes_is_masked(written: str) -> None:
    assert mask_text(written) == MASKED_VISA


def test_a_card_number_inside_a_sentence_is_masked_and_the_words_around_it_kept() -> None:
    said = "my card is 4111-1111-1111-1111, please refund it."
    assert mask_text(said) == f"my card is {MASKED_VISA}, please refund it."


def test_several_card_numbers_in_one_message_are_each_masked() -> None:
    said = "first 4111111111111111 then 5555 5555 5555 4444 and 378282246310005"
    assert mask_text(said) == (
        f"first {MASKED_VISA} then **** **** **** 4444 and **** **** **** 0005")


def test_two_card_numbers_separated_by_one_space_are_both_masked() -> None:
    assert mask_text("4111111111111111 5555555555554444") == (
        f"{MASKED_VISA} **** **** **** 4444")


def test_a_card_number_followed_by_its_security_code_is_still_masked() -> None:
    # The customer types the three-digit code right after the number, as people do.
    said = "it is 4111 1111 1111 1111 737"
    masked = mask_text(said)
    assert "4111 1111 1111 1111" not in masked
    assert masked == f"it is {MASKED_VISA} 737"


def test_a_number_that_fails_the_luhn_check_is_left_alone() -> None:
    assert not luhn_valid("4111111111111112")
    assert mask_text("order 4111111111111112 shipped") == "order 4111111111111112 shipped"


@pytest.mark.parametrize("phone", [
    "+1 (555) 010-4477", "+15550104477", "+44 20 7946 0958", "call 555-010-4477 after 5"])
def test_phone_numbers_are_not_mistaken_for_card_numbers(phone: str) -> None:
    assert mask_text(phone) == phone


def test_a_digit_run_longer_than_any_card_number_is_left_alone() -> None:
    tracking = "41111111111111111111"  # 20 digits
    assert mask_text(tracking) == tracking


def test_card_numbers_are_masked_anywhere_inside_nested_values() -> None:
    privacy = Privacy(Settings(redis_url="redis://unused"), digest=lambda v: v)
    value = {"card": "4111111111111111", "notes": ["pay with 5555555555554444", 3], "ok": True,
             "number": 4111111111111111}
    assert privacy.mask_value("acme", value) == {
        "card": MASKED_VISA, "notes": ["pay with **** **** **** 4444", 3], "ok": True,
        "number": MASKED_VISA}


# -- identities ------------------------------------------------------------------------------


@pytest.mark.parametrize("written", [
    "+1 (555) 010-4477", "+1 555 010 4477", "+15550104477", "  +1-555-010-4477 "])
def test_a_phone_number_is_stored_in_e164_however_it_was_written(written: str) -> None:
    assert normalise(Identity(kind="phone", value=written)) == Ident("phone", "+15550104477")


def test_a_foreign_phone_number_keeps_its_country_code() -> None:
    assert normalise(Identity(kind="phone", value="+44 20 7946 0958")).value == "+442079460958"


@pytest.mark.parametrize("bad", ["call me", "5550104477", "+1 555", "++"])
def test_a_phone_number_that_is_not_international_or_not_possible_is_422(bad: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        normalise(Identity(kind="phone", value=bad), loc=("customer", "identities", 0))
    assert caught.value.status == 422
    assert caught.value.extra["errors"][0]["loc"] == ["customer", "identities", 0, "value"]


def test_an_email_address_is_lower_cased() -> None:
    assert normalise(Identity(kind="email", value="Ana@Example.COM")) == Ident(
        "email", "ana@example.com")


@pytest.mark.parametrize("bad", ["ana.example.com", "@example.com", "ana@", "a@b@example.com"])
def test_an_email_without_exactly_one_inner_at_sign_is_422(bad: str) -> None:
    with pytest.raises(Unprocessable):
        normalise(Identity(kind="email", value=bad))


def test_other_identity_kinds_are_trimmed_but_keep_their_case() -> None:
    assert normalise(Identity(kind="account", value="  AB-88812345 ")) == Ident(
        "account", "AB-88812345")


def test_a_card_number_given_as_an_identity_value_is_masked_before_it_is_indexed() -> None:
    assert normalise(Identity(kind="x-card", value="4111111111111111")).value == MASKED_VISA


def test_an_identity_value_with_control_characters_is_422() -> None:
    with pytest.raises(Unprocessable):
        normalise(Identity(kind="chat", value="visitor\n42"))


def test_an_identity_value_of_only_spaces_is_422() -> None:
    with pytest.raises(Unprocessable):
        normalise(Identity(kind="account", value="   "))


# -- path refs -------------------------------------------------------------------------------


def test_a_customer_id_ref_is_taken_as_is() -> None:
    cus = "cus_01JDZ5Q3W8XK2M4N6P8R0T2V4Y"
    assert parse_ref(cus) == (cus, None)


def test_an_identity_ref_is_normalised_like_a_body_identity() -> None:
    assert parse_ref("phone:+1 (555) 010-4477") == (None, Ident("phone", "+15550104477"))
    assert parse_ref("email:Ana@Example.com") == (None, Ident("email", "ana@example.com"))


def test_an_identity_ref_value_may_itself_contain_colons() -> None:
    assert parse_ref("x-crm:emea:42") == (None, Ident("x-crm", "emea:42"))


@pytest.mark.parametrize("ref", [
    "cus_tooshort", "cus_01JDZ5Q3W8XK2M4N6P8R0T2V4U",  # U is not in the ULID alphabet
    "phone:not a number", "email:nobody", "account:", "chat:bad\x00value"])
def test_a_ref_of_a_known_kind_that_names_nothing_valid_is_not_found(ref: str) -> None:
    with pytest.raises(NotFound):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["visitor-42", "", "passport:X123", "Phone:+15550104477"])
def test_a_ref_of_no_identity_kind_is_a_validation_error_that_lists_the_kinds(ref: str) -> None:
    with pytest.raises(Unprocessable, match="phone, email, account, chat, crm or x-<name>"):
        parse_ref(ref)


# -- flags -----------------------------------------------------------------------------------


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon(Settings())


def test_a_risk_term_is_spotted_whatever_its_case(lexicon: Lexicon) -> None:
    assert lexicon.hits("I will talk to my LAWYER about this") == [Hit("legal", "lawyer")]


def test_a_term_inside_a_longer_word_is_not_a_hit(lexicon: Lexicon) -> None:
    assert lexicon.hits("the lawsuits page and my attorneys-general essay") == []
    assert lexicon.hits("I will pursue you to the end") == []


def test_a_phrase_matches_across_any_run_of_whitespace(lexicon: Lexicon) -> None:
    said = "please Cancel  my\n account today"
    assert lexicon.hits(said) == [Hit("churn", "cancel my account")]


def test_a_phrase_that_continues_into_a_longer_word_is_not_a_hit(lexicon: Lexicon) -> None:
    assert lexicon.hits("cancel my accounting software trial") == []


def test_one_message_can_raise_several_flags(lexicon: Lexicon) -> None:
    hits = lexicon.hits("This is ridiculous, I am calling the police.")
    assert set(hits) == {Hit("legal", "police"), Hit("frustration", "ridiculous")}


@pytest.mark.parametrize("said", [
    "I want a human", "Agent!", "let me talk to  someone", "get me a REAL PERSON"])
def test_a_request_for_a_human_is_recognised(lexicon: Lexicon, said: str) -> None:
    assert lexicon.asks_for_human(said)


@pytest.mark.parametrize("said", [
    "that is inhumane", "my travel agency booked it", "the operators' manual", "no thanks"])
def test_words_that_merely_contain_a_human_request_term_are_not_a_request(
        lexicon: Lexicon, said: str) -> None:
    assert not lexicon.asks_for_human(said)


def test_a_tenant_configured_lexicon_replaces_the_default_terms() -> None:
    custom = Lexicon(Settings(lexicon={"risk": ["chargeback"]}, human_request_terms=[]))
    assert custom.hits("I will file a Chargeback") == [Hit("risk", "chargeback")]
    assert custom.hits("I want to sue you") == []
    assert not custom.asks_for_human("I want a human")


def test_a_term_with_regex_characters_is_matched_literally() -> None:
    custom = Lexicon(Settings(lexicon={"risk": ["a.b (legal)"]}))
    assert custom.hits("see a.b (legal) now") == [Hit("risk", "a.b (legal)")]
    assert custom.hits("see axb (legal) now") == []


def test_the_lexicon_finds_every_term_a_turn_holds_even_where_terms_overlap() -> None:
    lexicon = Lexicon(Settings(redis_url="redis://unused", lexicon={
        "risk": ["sue", "sue you"], "churn": ["cancel my account", "cancel"]},
        human_request_terms=["human", "real person"]))
    assert lexicon.hits("I will SUE YOU and cancel\n my   account") == [
        Hit("risk", "sue"), Hit("risk", "sue you"), Hit("churn", "cancel my account"),
        Hit("churn", "cancel")]
    assert lexicon.hits("pursue a cancellation, a suede issue") == []  # whole words only
    assert lexicon.hits("") == []
    assert lexicon.asks_for_human("a REAL  person please") and not lexicon.asks_for_human(
        "humane treatment")
    assert Lexicon(Settings(redis_url="redis://unused", lexicon={},
                            human_request_terms=[])).hits("sue you") == []
