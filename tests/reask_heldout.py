"""A held-out set of agent turns, each labelled with the topics it re-asks given `KNOWN`.

Written from how contact-centre agents talk in chat and on the phone, independently of the
detector's phrase lists, so that measuring the detector on it says something about turns it
was not tuned on.

Labelling rule: a turn re-asks a topic when it asks the customer to give, state, repeat or
confirm a value the context already holds (account, order number, email, phone). It does not
re-ask when it reads the value back for a yes/no ("is your email still ana@example.com?"),
mentions the topic without asking for its value ("did the email arrive?", "when did you place
the order?"), asks for a different or new value (a new email, a tracking number, a case
number), or asks for something the context does not hold (date of birth, card, address).
"""

from __future__ import annotations

from handoff.services.reask_detector import Known

ACCOUNT = "ACC-20418"
ORDER = "A-1001"
EMAIL = "ana@example.com"
PHONE = "+15550104477"

# Account, order number, email and phone are known; date of birth, card and address are not.
KNOWN: dict[str, list[Known]] = {
    "account": [Known("account", ACCOUNT)],
    "order_number": [Known("order_number", ORDER)],
    "email": [Known("email", EMAIL)],
    "phone": [Known("phone", PHONE)],
}

A = frozenset({"account"})
O = frozenset({"order_number"})  # noqa: E741 - one letter per topic keeps the table readable
E = frozenset({"email"})
P = frozenset({"phone"})
NONE: frozenset[str] = frozenset()

TURNS: list[tuple[str, frozenset[str]]] = [
    # Asking for the account again.
    ("Can I take your account number please?", A),
    ("What's the account number on this?", A),
    ("could u send me ur acct number", A),
    ("Before I go any further I'll just need your account number.", A),
    ("Please provide the account number so I can pull up your details.", A),
    ("Do you have your account number handy?", A),
    ("May I have the customer reference number on the account?", A),
    ("Whats ur account no", A),
    ("Could you read me the number on your account, love?", A),
    ("I'm going to need the account number off your bill.", A),
    ("Can you verify your account number for me?", A),
    ("Could you confirm the account number for me, please?", A),
    ("Sorry, what was your account number again?", A),
    ("Just to double-check, can you give me your account number one more time?", A),
    ("Can I grab your acc # real quick?", A),
    ("Thanks for waiting. Can you pop your account number in the chat for me?", A),
    ("Whats the acount number pls", A),
    ("Would you mind confirming your account number?", A),
    ("Can I get the account # off your statement?", A),
    ("whats the acc numbr", A),
    ("Hi Ana, thanks for holding. What's your account number?", A),
    ("What account number did the bot give you?", A),
    ("Sorry, the line's terrible - can you give me that account number again?", A),
    ("account number?", A),
    ("Okay. I can help with that. First, can I take your account number?", A),
    # Asking for the order number again.
    ("Can I have your order number please?", O),
    ("What's the order number?", O),
    ("Do you have the order reference to hand?", O),
    ("Could you send over the order # from your confirmation email?", O),
    ("which order is this about?", O),
    ("pls share the order no. so i can check tracking", O),
    ("I'll need the order ID to look into the refund.", O),
    ("Can you find the order confirmation number for me? It starts with A.", O),
    ("Sorry, could you repeat the order number?", O),
    ("Could you confirm the order number, please?", O),
    ("What's the ordr number on the receipt?", O),
    ("Can you give me the number of the order you'd like to return?", O),
    ("Can I hav ur order numbr", O),
    ("And the order number was...?", O),
    ("Can you tell me the order number you're phoning about?", O),
    ("Hiya, what's the number of the order you're chasing?", O),
    ("Thanks for your patience. I've looked into the delay. Could you give me the order number "
     "so I can chase the courier?", O),
    # Asking for the email again.
    ("What's the best email address to reach you?", E),
    ("Could you confirm the email we have on file?", E),
    ("Can I get your e-mail please?", E),
    ("what email did u sign up with?", E),
    ("Please type your email address so I can send the return label.", E),
    ("Can you spell out your email address for me?", E),
    ("Which email is the account registered under?", E),
    ("Could you let me know the e-mail address linked to your account?", E),
    ("May I have your email adress?", E),
    ("Can I take an email address for the confirmation?", E),
    ("What's ur emial", E),
    ("Can you confirm your mail ID?", E),
    ("pls confrim ur email adress", E),
    ("Right, so what's the email address?", E),
    ("Email?", E),
    ("What's the email you'd have used when you ordered?", E),
    ("Can you verify the email address associated with the account?", E),
    ("I'm sorry to hear that. Let me sort this out for you. What's the email on your account?", E),
    # Asking for the phone number again.
    ("What's the best number to reach you on?", P),
    ("Can I take a contact number in case we get cut off?", P),
    ("Could you confirm your phone number please?", P),
    ("What's your mobile number?", P),
    ("Can I get a callback number?", P),
    ("could u pls share ur cell #", P),
    ("What telephone number is on the account?", P),
    ("Can you give me your phone no. including the area code?", P),
    ("Is there a number I can ring you back on?", P),
    ("Could I have your mobile, please?", P),
    ("Whats the phone numbr on file", P),
    ("can u giv me ur phone nmber", P),
    ("Your phone number?", P),
    ("Could you please provide the mobile number registered with us?", P),
    ("What's a good call-back number for you?", P),
    ("I'll need to take the phone number linked to the account before I can make changes.", P),
    ("Right, I've got your details up. Can you just confirm your phone number for security?", P),
    # Several topics in one turn, known and not.
    ("Can I get your account number and the email on the account?",
     frozenset({"account", "email"})),
    ("To verify you, I'll need your full name, phone number and date of birth.", P),
    ("What's your order number and the email you used at checkout?",
     frozenset({"order_number", "email"})),
    ("Please provide your account number, date of birth and postcode.", A),
    ("Could you give me the order number and a good callback number?",
     frozenset({"order_number", "phone"})),
    ("I need your account number, the phone number on it, and your email address.",
     frozenset({"account", "phone", "email"})),
    ("Could I have your date of birth and the first line of your address?", NONE),
    ("Can you confirm the last four of the card and your email?", E),
    ("Can I confirm who I'm speaking with? I'll need the account holder's name and the account "
     "number.", A),
    ("I just need to verify a couple of things: the email address on the account and your date "
     "of birth.", E),
    # Reading back what is known, or telling rather than asking.
    ("I see your order A-1001 here. It left the warehouse yesterday.", NONE),
    ("No problem at all! I'll send the refund confirmation to ana@example.com. Anything else I "
     "can do?", NONE),
    ("Got it. The parcel is with the courier. Do you want me to text updates to +15550104477?",
     NONE),
    ("I can see your account here, thanks.", NONE),
    ("I've pulled up your account and I can see the charge from Tuesday.", NONE),
    ("Your order number is A-1001 and it shipped on Monday.", NONE),
    ("We'll email you at ana@example.com once the refund is processed.", NONE),
    ("Is your email still ana@example.com?", NONE),
    ("I have the mobile ending 4477 on file - is that still right?", NONE),
    ("Just so you know, we'll call you on the number on your account if anything changes.", NONE),
    ("Your account is verified, so there's no need to give me any details again.", NONE),
    ("I've updated the email on your account.", NONE),
    ("The order number you gave the bot, A-1001, shows as delivered.", NONE),
    ("You don't need to repeat your account number, I've got it here.", NONE),
    ("I'll send a confirmation to the email we have on file.", NONE),
    ("Is +15550104477 still the best number to reach you on?", NONE),
    ("I'll ring you back on the mobile number you gave earlier.", NONE),
    ("Could you confirm that A-1001 is the order you want to return?", NONE),
    ("Your account number is on the top right of your bill if you ever need it.", NONE),
    ("I can confirm your email address has been updated.", NONE),
    ("I've confirmed your phone number, thanks.", NONE),
    ("Your account number has been confirmed.", NONE),
    # Mentioning a known topic without asking for its value.
    ("Can you check your email for a message from us?", NONE),
    ("Did you get the text we sent to your phone?", NONE),
    ("Have you tried logging out of your account and back in?", NONE),
    ("Can you check your phone for a verification code?", NONE),
    ("What happened with the order?", NONE),
    ("Which item on the order is damaged?", NONE),
    ("When did you place the order?", NONE),
    ("How long have you had the account?", NONE),
    ("Would you like me to close the account?", NONE),
    ("Would you like the receipt sent by email or by text?", NONE),
    ("Do you want to update your phone number?", NONE),
    ("What's the new email address you'd like to use?", NONE),
    ("Is the account in your name or your partner's?", NONE),
    ("Are you calling from the phone number on the account?", NONE),
    ("Did the email with the tracking link arrive?", NONE),
    ("Can you confirm you still have access to the email on file?", NONE),
    ("Can you screenshot the email you received and send it over?", NONE),
    ("Could you forward me the email from the courier?", NONE),
    ("What's your accountant's email address so we can copy them in?", NONE),
    ("Whats the model number of ur phone?", NONE),
    ("Which phone are you using, iPhone or Android?", NONE),
    ("What browser are you using to log into your account?", NONE),
    # Asking for what the context does not hold.
    ("Can you confirm your date of birth for me?", NONE),
    ("What's your DOB?", NONE),
    ("Could I take the first line of your address and postcode?", NONE),
    ("What's the shipping address for the replacement?", NONE),
    ("Can you read me the long number on the front of your card?", NONE),
    ("What are the last four digits of the card you paid with?", NONE),
    ("wats ur d.o.b pls", NONE),
    ("Which card would you like the refund to go back to?", NONE),
    ("Can I have your billing zip code?", NONE),
    ("Could you confirm your home address, please?", NONE),
    ("When were you born?", NONE),
    ("What's the expiry date on the card?", NONE),
    # Asking about something else.
    ("How can I help you today?", NONE),
    ("Is there anything else I can help with?", NONE),
    ("Could you describe what the error message says?", NONE),
    ("What's your name, please?", NONE),
    ("Can you tell me a bit more about the problem?", NONE),
    ("Have you tried restarting the router?", NONE),
    ("What time would suit you for an engineer visit?", NONE),
    ("Can I put you on hold for two minutes while I check?", NONE),
    ("What's the serial number on the back of the device?", NONE),
    ("What's the reference number on the error screen?", NONE),
    ("Could you give me the tracking number the courier sent you?", NONE),
    ("What's the case number from your last call?", NONE),
    ("How many items were missing from the delivery?", NONE),
    ("Thanks, that's everything I need.", NONE),
    ("Cheers, give me a sec to look that up.", NONE),
]
