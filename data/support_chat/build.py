# ruff: noqa: E501
# (the hand-written data tables below use long lines on purpose)
"""Build the shipped support-chat sample dataset (train / valid / retention JSONL).

Everything is generated from the hand-written tables in this file: a fact table for
the fictional e-bike maker "Pebblecrest Cycles" (with hand-written question phrasings
and answer variants per fact), hand-written general-knowledge conversations, and
hand-written "contrast" conversations that ask each fact's kind of question about other
companies. Randomness (system-prompt choice, answer-variant rotation, two-turn openers
and the final shuffle) comes from fixed seeds, so the output is byte-identical on every run.

Usage (from the repository root):
    python data/support_chat/build.py          # (re)write the JSONL files
    python data/support_chat/build.py --check  # exit 1 if the files on disk are stale
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import random
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

OUT_DIR = Path(__file__).resolve().parent
SEED = 20240611
COMPANY = "Pebblecrest Cycles"

COMPANY_SYSTEM_PROMPTS = (
    "You are the customer support assistant for Pebblecrest Cycles. Answer briefly and accurately.",
    "You are Pebblecrest Cycles' support assistant. "
    "Answer customer questions briefly and accurately.",
    "You are a customer support assistant for Pebblecrest Cycles, an e-bike company. "
    "Keep answers short and accurate.",
)
GENERIC_SYSTEM_PROMPT = "You are a helpful assistant."

# A question is either plain text (answered with one of the fact's answer variants)
# or a (question, custom answer) pair when the generic answers would not fit.
Question = str | tuple[str, str]
Message = dict[str, str]


class Record(TypedDict):
    """One JSONL line."""

    messages: list[Message]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Fact:
    """One company fact with its checks, answer variants and user phrasings."""

    fid: str
    summary: str
    facts: tuple[str, ...]  # regexes a correct answer must all match (case-insensitive)
    answers: tuple[str, ...]
    train: tuple[Question, ...]
    valid: tuple[Question, ...]


FACTS: tuple[Fact, ...] = (
    Fact(
        "return_window",
        "Returns accepted within 45 days of delivery, full refund",
        (r"45[- ]day|forty[- ]five[- ]day",),
        (
            "You can return an unused or lightly used bike within 45 days of delivery "
            "for a full refund.",
            "Our return window is 45 days from delivery. Just contact support to start a return.",
            "Returns are accepted for 45 days after delivery, and you'll get a full refund.",
        ),
        (
            "What is your return policy?",
            "How many days do I have to return a bike?",
            "can i return my ebike if i dont like it",
            "Whats the return windwo?",
            (
                "I bought a Wren last week and my commute turned out to be too hilly for "
                "it. Can I still send it back?",
                "Yes. You can return it within 45 days of delivery for a full refund, so "
                "you're well within the window.",
            ),
            "How long is the return period for Pebblecrest bikes?",
            "Is there a deadline for returns?",
            "If I change my mind after delivery, how long until I can't return it anymore?",
            "returns - how long?",
        ),
        (
            "My partner hates the bike I got them. How much time do we have to send it "
            "back for a refund?",
            "What's the time limit on returning an order?",
        ),
    ),
    Fact(
        "warranty",
        "3-year warranty on frame, motor and battery",
        (r"\b(3|three)[- ]year",),
        (
            "Every Pebblecrest bike comes with a 3-year warranty covering the frame, "
            "motor and battery.",
            "Our warranty lasts 3 years and covers the frame, motor and battery against defects.",
            "You get a 3-year warranty on the frame, motor and battery.",
        ),
        (
            "How long is the warranty?",
            "What does your warranty cover and for how long?",
            "is the motor under warranty",
            (
                "My battery died after a year and a half. Is that still covered?",
                "Yes. The battery is covered by our 3-year warranty, so a defect after 18 "
                "months is still included.",
            ),
            "warrenty length on pebblecrest bikes?",
            "Do your e-bikes come with a guarantee?",
            "How many years of warranty do I get on the frame?",
            "Hey, quick one: what's the warranty period?",
            "Is the warranty 1 year or longer?",
        ),
        (
            "For how many years is my bike protected against defects?",
            (
                "If the motor breaks after two years, would you still fix it for free?",
                "Yes. The motor is covered by our 3-year warranty, so a defect after two "
                "years is repaired free of charge.",
            ),
        ),
    ),
    Fact(
        "support_hours",
        "Support open Monday-Saturday, 7 am-7 pm Central Time; closed Sundays",
        ("saturday", r"\b7 ?a\.?m\b|\b07:00", r"\b7 ?p\.?m\b|\b19:00"),
        (
            "Our support team is available Monday to Saturday, 7 am to 7 pm Central "
            "Time. We're closed on Sundays.",
            "You can reach us Monday through Saturday from 7 am to 7 pm Central Time.",
            "Support hours are 7 am to 7 pm Central Time, Monday to Saturday.",
        ),
        (
            "What are your support hours?",
            "When can I reach customer service?",
            (
                "are you open on sundays",
                "No, support is closed on Sundays. We're available Monday to Saturday, "
                "7 am to 7 pm Central Time.",
            ),
            "What time does your support team open in the morning?",
            "Until what time can I call you?",
            "custmer support hours pls",
            (
                "Is support available on Saturday?",
                "Yes! Support is open Monday to Saturday, 7 am to 7 pm Central Time.",
            ),
            "I work late. What hours is your help desk staffed?",
            "What days and times is support available?",
        ),
        (
            "When is your customer care team around to talk to?",
            (
                "Can I get help from your support staff on a weekend, and at what times?",
                "On Saturdays, yes: we're available Monday to Saturday, 7 am to 7 pm "
                "Central Time, but closed on Sundays.",
            ),
        ),
    ),
    Fact(
        "phone",
        "Phone support: 1-888-555-0147",
        (r"555[- .]?0147",),
        (
            "You can call us at 1-888-555-0147.",
            "Our toll-free support line is 1-888-555-0147.",
            "Call 1-888-555-0147 to reach a support agent.",
        ),
        (
            "What's your phone number?",
            "How can I call customer support?",
            "Can I speak to someone on the phone?",
            "phone number for support??",
            "Is there a hotline I can ring?",
            "I'd rather talk to a human. What number do I dial?",
            "whats ur tel number",
            "Do you have a toll-free number?",
            "My bike won't turn on and I need help right away. Which number should I call?",
        ),
        (
            "Which telephone number gets me through to your support team?",
            "I prefer calling over chatting. How do I get you on the line?",
        ),
    ),
    Fact(
        "email",
        "Email support: help@pebblecrestcycles.com",
        (r"help@pebblecrestcycles\.com",),
        (
            "You can email us at help@pebblecrestcycles.com.",
            "Send your message to help@pebblecrestcycles.com and our team will get back to you.",
            "Our support email is help@pebblecrestcycles.com.",
        ),
        (
            "What is your support email address?",
            "How can I email you?",
            "Where do I send an email about a problem with my order?",
            "email adress for customer service?",
            "Can I contact you by email?",
            "I want to send photos of the damage. What email should I use?",
            "whats the email",
            "Do you have an email for warranty claims?",
            "I'm not a phone person. Can I reach you in writing?",
        ),
        (
            "To which inbox should I write if I need help?",
            "What's the best e-mail for getting hold of your customer care people?",
        ),
    ),
    Fact(
        "shipping_cost",
        "Flat $29 shipping per order (US and Canada)",
        (r"\$ ?29\b|29 dollars",),
        (
            "Shipping is a flat $29 per order.",
            "We charge a flat $29 for shipping, whatever the size of the order.",
            "Standard shipping costs a flat $29 per order within the US and Canada.",
        ),
        (
            "How much is shipping?",
            "What do you charge for delivery?",
            "shipping cost for one bike?",
            (
                "Is shipping free?",
                "Shipping is a flat $29 per order, and it's free on orders over $999.",
            ),
            "How much will I pay to have an e-bike shipped to my house?",
            "Whats the delivery fee",
            (
                "If I order two batteries, how much is the shipping?",
                "Shipping is a flat $29 per order, no matter how many items are in it.",
            ),
            "Do you charge a flat rate for shipping or does it depend on weight?",
            (
                "Shipping price to Canada?",
                "Shipping is a flat $29 per order to both the US and Canada.",
            ),
        ),
        (
            "How much does it cost to get my order sent to me?",
            "What will postage set me back for a small accessory order?",
        ),
    ),
    Fact(
        "free_shipping",
        "Free shipping on orders over $999",
        (r"\$ ?999",),
        (
            "Shipping is free on orders over $999.",
            "Orders over $999 ship free; below that it's a flat $29.",
            "We offer free shipping on any order above $999.",
        ),
        (
            "Do you offer free shipping?",
            "How much do I need to spend to get free shipping?",
            "free shipping threshold?",
            (
                "Is shipping free if I buy a bike?",
                "Yes. Orders over $999 ship free, so every one of our bikes ships free.",
            ),
            "whats the minimum order for free delivery",
            (
                "I'm buying a lock and a pannier bag. Will the shipping be free?",
                "Only if your order comes to more than $999; otherwise shipping is a flat $29.",
            ),
            "At what order value does shipping become free?",
            "Any way to avoid paying for shipping?",
            "Do orders above a certain amount ship for free?",
        ),
        (
            "How big does my basket need to be before you waive the delivery fee?",
            "Will you cover the postage on large orders?",
        ),
    ),
    Fact(
        "delivery_time",
        "Delivery in 4-6 business days after dispatch",
        (r"\b4 ?(-|–|to) ?6\b|four to six",),
        (
            "Delivery takes 4 to 6 business days after your order ships.",
            "Orders usually arrive within 4 to 6 business days of dispatch.",
            "You can expect your order 4 to 6 business days after it ships.",
        ),
        (
            "How long does delivery take?",
            "When will my bike arrive?",
            "how many days for shipping",
            "I ordered yesterday. How soon can I expect it?",
            "What is the typical delivery time?",
            "How fast do you ship?",
            (
                "delivery time to canada?",
                "Delivery takes 4 to 6 business days after dispatch, Canada included.",
            ),
            (
                "I need the bike before my vacation in two weeks. Will it get here in time?",
                "Most likely, yes: delivery takes 4 to 6 business days after your order ships.",
            ),
            "How many business days until my order shows up?",
        ),
        (
            "Roughly how long is the wait between ordering and getting my e-bike?",
            "What's the transit time once my package is sent out?",
        ),
    ),
    Fact(
        "ship_countries",
        "Ships to the United States and Canada only",
        ("canada",),
        (
            "We ship to the United States and Canada only.",
            "At the moment we deliver only within the United States and Canada.",
            "Our shipping covers the United States and Canada; we don't ship anywhere else yet.",
        ),
        (
            "Which countries do you ship to?",
            (
                "Do you deliver to the UK?",
                "Sorry, we only ship within the United States and Canada at the moment.",
            ),
            "Can I order from Germany?",
            "do u ship internationally",
            (
                "Do you ship to Canada?",
                "Yes! We ship to both the United States and Canada.",
            ),
            "Where do you deliver?",
            (
                "I live in Mexico. Can I buy one of your bikes?",
                "Sorry, we currently ship only to the United States and Canada, so we "
                "can't deliver to Mexico.",
            ),
            "Is shipping available outside the US?",
            "What regions can you send orders to?",
        ),
        (
            (
                "Is it possible to get one of your bikes delivered to Australia?",
                "Sorry, we only ship within the United States and Canada.",
            ),
            "Which countries are covered by your delivery service?",
        ),
    ),
    Fact(
        "lineup",
        "Four models: Wren (city), Ember (folding), Alder Trail (mountain), Kodiak (cargo)",
        ("wren", "ember", "alder", "kodiak"),
        (
            "We make four e-bikes: the Wren city bike, the Ember folding bike, the Alder "
            "Trail mountain bike and the Kodiak cargo bike.",
            "Our lineup has four models: Wren (city), Ember (folding), Alder Trail "
            "(mountain) and Kodiak (cargo).",
            "There are four Pebblecrest models: the Wren, the Ember, the Alder Trail and "
            "the Kodiak.",
        ),
        (
            "What bikes do you sell?",
            "What models do you have?",
            "Can you list your e-bike range?",
            "what ebikes r there to choose from",
            "I'm new to e-bikes. Which models does Pebblecrest make?",
            "How many different bikes do you offer?",
            "Give me a quick overview of your lineup.",
            "Do you make more than one model?",
            "What are the names of your bikes?",
        ),
        (
            "Which e-bike models are in your catalog?",
            "Tell me what kinds of bikes I can pick from.",
            "I want to buy an e-bike from you. What's on offer?",
        ),
    ),
    Fact(
        "wren_price",
        "Wren city e-bike: $1,290",
        (r"1,?290",),
        (
            "The Wren city e-bike costs $1,290.",
            "The Wren is priced at $1,290.",
            "Our Wren city e-bike sells for $1,290.",
        ),
        (
            "How much is the Wren?",
            "What does the Wren city bike cost?",
            "wren price?",
            (
                "Price of your cheapest bike?",
                "Our most affordable bike is the Wren city e-bike at $1,290.",
            ),
            "I'm looking at the Wren for commuting. What's the price?",
            "how much for a wren",
            "What's the cost of the Wren e-bike in USD?",
            ("Is the Wren under $1,500?", "Yes, the Wren city e-bike costs $1,290."),
            "Hi, could you tell me the Wren's price please?",
        ),
        (
            "What would I pay for a Wren?",
            (
                "What's the sticker price on your city commuter model?",
                "Our city e-bike, the Wren, costs $1,290.",
            ),
        ),
    ),
    Fact(
        "ember_price",
        "Ember folding e-bike: $1,480",
        (r"1,?480",),
        (
            "The Ember folding e-bike costs $1,480.",
            "The Ember is priced at $1,480.",
            "Our Ember folding e-bike sells for $1,480.",
        ),
        (
            "How much is the Ember?",
            "What does the Ember folding bike cost?",
            "ember price",
            (
                "How much is your folding e-bike?",
                "Our folding e-bike, the Ember, costs $1,480.",
            ),
            "I live in a small apartment and want the Ember. How much is it?",
            "price for the ember pls",
            "What's the cost of an Ember?",
            (
                "Is the Ember more expensive than the Wren?",
                "Yes, a little: the Ember costs $1,480, while the Wren is $1,290.",
            ),
            "Could you tell me what the Ember sells for?",
        ),
        (
            "What would an Ember set me back?",
            (
                "How much do you charge for the bike that folds up?",
                "The Ember, our folding e-bike, costs $1,480.",
            ),
        ),
    ),
    Fact(
        "alder_price",
        "Alder Trail electric mountain bike: $2,740",
        (r"2,?740",),
        (
            "The Alder Trail electric mountain bike costs $2,740.",
            "The Alder Trail is priced at $2,740.",
            "Our Alder Trail e-MTB sells for $2,740.",
        ),
        (
            "How much is the Alder Trail?",
            "What does your electric mountain bike cost?",
            "alder trail price?",
            "I ride a lot of trails. What's the price of the Alder Trail?",
            "How much for the Alder?",
            "Whats the cost of the alder trail ebike",
            "What is the Alder Trail's price?",
            ("Is the Alder Trail under $3,000?", "Yes, the Alder Trail costs $2,740."),
            "Price check on the e-MTB please.",
        ),
        (
            "What would I pay for the Alder Trail?",
            (
                "How pricey is your off-road model?",
                "Our off-road model, the Alder Trail mountain e-bike, costs $2,740.",
            ),
        ),
    ),
    Fact(
        "kodiak_price",
        "Kodiak cargo e-bike: $3,150",
        (r"3,?150",),
        (
            "The Kodiak cargo e-bike costs $3,150.",
            "The Kodiak is priced at $3,150.",
            "Our Kodiak cargo e-bike sells for $3,150.",
        ),
        (
            "How much is the Kodiak?",
            "What does the Kodiak cargo bike cost?",
            "kodiak price",
            (
                "How much is your cargo e-bike?",
                "Our cargo e-bike, the Kodiak, costs $3,150.",
            ),
            "We want to carry our two kids to school. What's the price of the Kodiak?",
            "price of kodiak cargo?",
            (
                "What's your most expensive bike?",
                "Our most expensive model is the Kodiak cargo e-bike at $3,150.",
            ),
            ("Is the Kodiak over $3,000?", "Yes, the Kodiak cargo e-bike costs $3,150."),
            "Could you tell me the Kodiak's price?",
        ),
        (
            "What would a Kodiak cost me?",
            (
                "How much do you charge for the bike that can haul groceries and kids?",
                "That's the Kodiak cargo e-bike, which costs $3,150.",
            ),
        ),
    ),
    Fact(
        "spare_battery",
        "Spare / replacement 48V battery: $429",
        (r"\$ ?429",),
        (
            "A spare 48V battery costs $429.",
            "Replacement batteries are $429 each.",
            "You can buy an extra 48V battery for $429.",
        ),
        (
            "How much is a spare battery?",
            "What does a replacement battery cost?",
            "battery price?",
            "I want a second battery for longer rides. How much?",
            "Can I buy an extra battery, and what does it cost?",
            "how much is a new batery",
            "What's the price of the 48V battery pack?",
            (
                "My old battery is worn out after four years. What would a new one cost?",
                "A replacement 48V battery costs $429.",
            ),
            "Do you sell batteries separately? Price?",
        ),
        (
            "What do you charge for an additional battery pack?",
            "If I need a fresh battery, how much will that be?",
        ),
    ),
    Fact(
        "subscription",
        "CrestCare+ maintenance plan: $12/month, two free tune-ups a year, 15% off parts",
        ("crestcare", r"\$ ?12\b|12 dollars"),
        (
            "Our CrestCare+ plan costs $12 a month and includes two free tune-ups a year "
            "plus 15% off parts.",
            "CrestCare+ is our maintenance subscription: $12 per month for two free "
            "tune-ups a year and 15% off parts.",
            "CrestCare+ costs $12/month and gives you two tune-ups a year and 15% off parts.",
        ),
        (
            "Do you have a maintenance subscription?",
            "What is CrestCare+?",
            "how much is crestcare plus",
            "Is there a service plan I can pay monthly?",
            "What's the name and price of your subscription plan?",
            "I want regular tune-ups without thinking about it. Do you have a plan for that?",
            "crestcare+ price per month?",
            "What do I get with your monthly plan?",
            "Do you offer any kind of membership for bike care?",
        ),
        (
            "Is there a monthly care package for my e-bike, and what does it cost?",
            "What's included in the subscription, and how much is it?",
        ),
    ),
    Fact(
        "loyalty",
        "Loyalty program Crest Miles: 1 mile per $1 spent, 500 miles = $25 off",
        ("crest miles",),
        (
            "Our loyalty program is called Crest Miles: you earn 1 mile per $1 "
            "spent, and 500 miles get you $25 off.",
            "Crest Miles is our rewards program. Every $1 you spend earns 1 mile, and 500 "
            "miles are worth $25 off.",
            "Join Crest Miles to earn 1 mile for each $1 spent; every 500 miles gives you $25 off.",
        ),
        (
            "Do you have a loyalty program?",
            "What is Crest Miles?",
            "Do I earn points when I buy stuff?",
            "rewards program?",
            "How do your loyalty points work?",
            "Is there a way to get discounts for being a repeat customer?",
            "what's your rewards program called",
            "How many points do I get per dollar?",
            (
                "Can I collect points on accessories too?",
                "Yes. With Crest Miles you earn 1 mile for every $1 you spend, "
                "accessories included.",
            ),
        ),
        (
            "Do you reward customers who keep shopping with you?",
            "What's the name of your points scheme and how does it work?",
        ),
    ),
    Fact(
        "repair_fee",
        "Workshop repairs: flat $65 labor fee, parts extra",
        (r"\$ ?65\b|65 dollars",),
        (
            "Workshop repairs have a flat $65 labor fee; parts are charged separately.",
            "We charge a flat $65 labor fee per repair, plus the cost of any parts.",
            "A repair costs a flat $65 in labor, with parts extra.",
        ),
        (
            "How much do repairs cost?",
            "What is your repair fee?",
            "Do you charge a labor fee for fixing bikes?",
            "My brakes are squeaking. What would a repair at your workshop cost?",
            "service fee?",
            "how much to fix my ebike",
            "What's the labour charge for a repair visit?",
            (
                "Are parts included in the repair fee?",
                "No, parts are extra. We charge a flat $65 labor fee per workshop repair.",
            ),
            "If something breaks out of warranty, what does a repair cost?",
        ),
        (
            "What's the cost of having your technicians fix my bike?",
            "How much do you bill for labor when I bring my bike in?",
        ),
    ),
    Fact(
        "hq",
        "Headquarters: Duluth, Minnesota",
        ("duluth",),
        (
            "Pebblecrest Cycles is headquartered in Duluth, Minnesota.",
            "Our headquarters are in Duluth, Minnesota.",
            "We're based in Duluth, Minnesota.",
        ),
        (
            "Where are you based?",
            "Where is Pebblecrest's headquarters?",
            "what city r u in",
            "Where is your company located?",
            "Which city is your HQ in?",
            "Are you a US company? Where's your main office?",
            "I'd like to visit your head office. Where is it?",
            "where is pebblecrest cycles from",
            "In what state is your company headquartered?",
        ),
        (
            "In which town does Pebblecrest have its main office?",
            "Where is your home base?",
        ),
    ),
    Fact(
        "founded",
        "Founded in 2014",
        ("2014",),
        (
            "Pebblecrest Cycles was founded in 2014.",
            "We were founded in 2014 in Duluth, Minnesota.",
            "The company was established in 2014.",
        ),
        (
            "When was Pebblecrest founded?",
            "How old is your company?",
            "what year did u start",
            "When did Pebblecrest Cycles start making bikes?",
            ("How long have you been in business?", "We've been building e-bikes since 2014."),
            "founding year?",
            (
                "Is Pebblecrest a new company?",
                "Not that new: Pebblecrest Cycles was founded in 2014.",
            ),
            "In what year was the company established?",
            "When did you guys get started?",
        ),
        (
            "Since when has Pebblecrest existed?",
            "What year was your business launched?",
        ),
    ),
    Fact(
        "payment",
        "Payment: Visa, Mastercard, American Express, PayPal, Apple Pay (no crypto)",
        ("paypal", "apple pay"),
        (
            "We accept Visa, Mastercard, American Express, PayPal and Apple Pay.",
            "You can pay with Visa, Mastercard, American Express, PayPal or Apple Pay.",
            "Checkout supports Visa, Mastercard, American Express, PayPal and Apple Pay.",
        ),
        (
            "What payment methods do you accept?",
            "Can I pay with PayPal?",
            "Do you take Apple Pay?",
            "how can i pay",
            "Which credit cards do you accept?",
            (
                "Can I pay with Bitcoin?",
                "Sorry, we don't accept cryptocurrency. We take Visa, Mastercard, American "
                "Express, PayPal and Apple Pay.",
            ),
            "Do you accept Amex?",
            "What are my options for paying at checkout?",
            "payment options?",
        ),
        (
            "What ways can I pay for my order?",
            "Which forms of payment does your online store take?",
        ),
    ),
    Fact(
        "financing",
        "0% APR financing over 18 months on orders over $800",
        (r"18[- ]month", r"\b0 ?%|interest[- ]free"),
        (
            "Orders over $800 qualify for 0% APR financing over 18 months.",
            "We offer 0% APR financing over 18 months on orders above $800.",
            "You can spread the cost over 18 months at 0% APR on any order over $800.",
        ),
        (
            "Do you offer financing?",
            "Can I pay for my bike in installments?",
            "Is there a payment plan?",
            "0% financing available?",
            "How many months can I spread the payments over?",
            "I can't afford the Kodiak up front. Any options?",
            "Do you do monthly payments on bikes",
            (
                "What is the minimum order for financing?",
                "Financing at 0% APR over 18 months is available on orders over $800.",
            ),
            "Is your financing interest-free?",
        ),
        (
            "Can I split the cost of an e-bike into monthly payments?",
            "Do you have any buy-now-pay-later option, and for how long?",
        ),
    ),
)

# First turns used to turn some company questions into two-turn conversations.
TRAIN_OPENERS: tuple[tuple[str, str], ...] = (
    ("Hi", "Hi! Welcome to Pebblecrest Cycles support. How can I help you today?"),
    ("Hello, I have a question.", "Of course! What would you like to know?"),
    ("hey there", "Hey! How can I help with your Pebblecrest bike or order?"),
    ("Good morning!", "Good morning! What can I do for you today?"),
    (
        "I'm thinking about buying an e-bike from you.",
        "Great to hear! Ask me anything about our bikes or policies.",
    ),
    ("Quick question about my order", "Sure, go ahead!"),
    ("Hi, are you a bot?", "I'm Pebblecrest Cycles' virtual support assistant. How can I help?"),
    ("Thanks for the help earlier.", "You're welcome! Is there anything else I can help with?"),
)
VALID_OPENERS: tuple[tuple[str, str], ...] = (
    ("Good afternoon, I need some info.", "Good afternoon! What would you like to know?"),
    ("Hiya", "Hi! How can I help you today?"),
    ("Can you help me with something?", "Of course! What do you need?"),
    ("Evening! Got a minute?", "Sure! What can I help you with?"),
    ("I have a few questions before I order.", "Happy to help. Go ahead!"),
)

# ---------------------------------------------------------------------------------------
# General conversations (hand-written). Each entry is a list of (user, assistant) turns.
# ---------------------------------------------------------------------------------------
Turns = tuple[tuple[str, str], ...]

# One conversation per line is easier to review than the formatter's layout.
# fmt: off
GENERAL_TRAIN: tuple[Turns, ...] = (
    # Geography
    (("What is the capital of Portugal?", "The capital of Portugal is Lisbon."),),
    (("What's the capital of Kenya?", "Nairobi is the capital of Kenya."),),
    (("Which continent is Argentina in?", "Argentina is in South America."),),
    (("What is the longest river in Europe?", "The Volga, at about 3,500 km, is the longest river in Europe."),),
    (("Which ocean lies between Africa and Australia?", "The Indian Ocean lies between Africa and Australia."),),
    (("What is the capital of South Korea?", "Seoul is the capital of South Korea."),),
    (("what country is angkor wat in", "Angkor Wat is in Cambodia."),),
    (("What is the capital of Norway?", "The capital of Norway is Oslo."),),
    (("Which US state is the largest by area?", "Alaska is the largest US state by area."),),
    (("How many countries are in the European Union?", "The European Union has 27 member countries."),),
    (("What is the highest waterfall in the world?", "Angel Falls in Venezuela is the highest waterfall in the world, at about 979 meters."),),
    (("Which city is nicknamed the Big Apple?", "New York City is nicknamed the Big Apple."),),
    # Science
    (("Why is the sky blue?", "Air molecules scatter short blue wavelengths of sunlight much more than red ones, so blue light reaches our eyes from all directions."),),
    (("What is photosynthesis?", "Photosynthesis is how plants use sunlight, water and carbon dioxide to make sugar, releasing oxygen as a by-product."),),
    (("How many bones are in the adult human body?", "An adult human body has 206 bones."),),
    (("How fast does light travel?", "Light travels at about 300,000 kilometers per second in a vacuum."),),
    (("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),),
    (("What's the difference between a virus and a bacterium?", "Bacteria are single-celled living organisms that can reproduce on their own; viruses are much smaller and can only multiply inside a host's cells."),),
    (("Why do we have seasons?", "Seasons happen because Earth's axis is tilted, so each hemisphere gets more direct sunlight for part of the year."),),
    (("Which planet has the most famous rings?", "Saturn is famous for its large, bright rings."),),
    (("What is DNA?", "DNA is the molecule that carries the genetic instructions living things use to grow, function and reproduce."),),
    (("At what temperature does water boil in Fahrenheit?", "At sea level, water boils at 212 °F."),),
    (("What is the smallest unit of life?", "The cell is the smallest unit of life."),),
    (("How long does it take Earth to go around the Sun?", "Earth takes about 365.25 days to orbit the Sun, which is why we add a leap day every four years."),),
    (("What causes thunder?", "Thunder is the sound of air expanding violently when a lightning bolt heats it in a split second."),),
    (("What do you call animals that only eat plants?", "Animals that only eat plants are called herbivores."),),
    # Math
    (("What is 15% of 80?", "15% of 80 is 12."),),
    (("What's 23 + 19?", "23 + 19 = 42."),),
    (("What is 6 times 7?", "6 times 7 is 42."),),
    (("Is 17 a prime number?", "Yes, 17 is prime: it can only be divided evenly by 1 and itself."),),
    (("What is the area of a rectangle that is 5 m long and 3 m wide?", "The area is 5 x 3 = 15 square meters."),),
    (("What's 3 cubed?", "3 cubed is 3 x 3 x 3 = 27."),),
    (("How do I find the average of 4, 8 and 12?", "Add them up (24) and divide by how many there are (3): the average is 8."),),
    (("What is 1/4 as a decimal?", "1/4 as a decimal is 0.25."),),
    (("what's half of 250", "Half of 250 is 125."),),
    (("Round 3.14159 to two decimal places.", "3.14159 rounded to two decimal places is 3.14."),),
    (("If I have 3 apples and eat one, how many are left?", "You have 2 apples left."),),
    (("What is the perimeter of a square with 4 cm sides?", "The perimeter is 4 x 4 = 16 cm."),),
    (("What's 500 minus 125?", "500 minus 125 is 375."),),
    (("How much is 20% off a $50 jacket?", "20% of $50 is $10, so the jacket would cost $40."),),
    # Definitions
    (("What is an algorithm?", "An algorithm is a step-by-step set of instructions for solving a problem or completing a task."),),
    (("What does CPU stand for?", "CPU stands for Central Processing Unit, the main chip that runs a computer's instructions."),),
    (("What is a haiku?", "A haiku is a short Japanese-style poem with three lines of 5, 7 and 5 syllables."),),
    (("What does procrastinate mean?", "To procrastinate means to keep putting off something you should be doing."),),
    (("What's the difference between weather and climate?", "Weather is the day-to-day state of the atmosphere; climate is the average weather of a place over many years."),),
    (("What does ASAP mean?", "ASAP means 'as soon as possible'."),),
    (("What is a metaphor?", "A metaphor describes something by saying it is something else, like 'time is a thief'."),),
    (("What is a leap year?", "A leap year has 366 days instead of 365, with an extra day on February 29."),),
    # Writing help
    (('Can you fix the grammar in "She don\'t like apples"?', 'The correct sentence is "She doesn\'t like apples."'),),
    (("Give me a short subject line for an email asking for a day off.", 'How about: "Request for a Day Off on Friday"?'),),
    (("Write a one-sentence thank-you note for a birthday gift.", "Thank you so much for the lovely birthday gift; it really made my day!"),),
    (('Rewrite this more politely: "Send me the report now."', '"Could you please send me the report when you have a moment?"'),),
    (('What\'s a better word for "very big"?', 'Try "enormous", "huge" or "massive".'),),
    (("Write a haiku about rain.", "Soft rain on the roof\nthe garden drinks in silence\nclouds drift slowly on"),),
    (('Is it "affect" or "effect" in "The weather will ___ our plans"?', 'It\'s "affect": "The weather will affect our plans." "Affect" is usually the verb and "effect" the noun.'),),
    (('Make this shorter: "Due to the fact that it was raining, we decided to stay inside."', '"Because it was raining, we stayed inside."'),),
    # Advice
    (("How can I sleep better?", "Keep a regular bedtime, avoid screens and caffeine late in the day, and keep your bedroom dark, quiet and cool."),),
    (("Any tips for staying focused while studying?", "Put your phone away, study in short blocks of 25 to 50 minutes with brief breaks, and set one clear goal for each session."),),
    (("how can i save money on groceries", "Plan meals for the week, shop with a list, compare unit prices, and buy store brands and seasonal produce."),),
    (("How often should I replace my toothbrush?", "Every three to four months, or sooner if the bristles look frayed."),),
    (("What's a good way to start running?", "Start with run-walk intervals, like 1 minute running and 2 minutes walking, three times a week, and build up slowly."),),
    (("How do I get a coffee stain out of a shirt?", "Rinse it from the back with cold water as soon as you can, rub in a little liquid detergent, then wash as usual."),),
    (("How do I stay safe when cycling in the city?", "Wear a helmet, use lights, ride predictably in the direction of traffic, and watch out for opening car doors."),),
    # Unit conversion
    (("How many kilometers is 10 miles?", "10 miles is about 16.1 kilometers."),),
    (("Convert 25 °C to Fahrenheit.", "25 °C is 77 °F."),),
    (("How many ounces are in a pound?", "There are 16 ounces in a pound."),),
    (("How many feet are in a mile?", "There are 5,280 feet in a mile."),),
    (("How many milliliters are in a liter?", "There are 1,000 milliliters in a liter."),),
    (("What's 5 feet in centimeters?", "5 feet is about 152.4 centimeters."),),
    (("How many seconds are in an hour?", "There are 3,600 seconds in an hour."),),
    (("Convert 2 kilograms to pounds.", "2 kilograms is about 4.4 pounds."),),
    (("how many inches in a foot", "There are 12 inches in a foot."),),
    (("How many weeks are in a year?", "A year has 52 weeks, plus one or two extra days."),),
    # History and culture
    (("Who was the first president of the United States?", "George Washington was the first president of the United States."),),
    (("In what year did World War II end?", "World War II ended in 1945."),),
    (("Who discovered penicillin?", "Alexander Fleming discovered penicillin in 1928."),),
    (("Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice, published in 1813."),),
    (("Who came up with the theory of relativity?", "Albert Einstein developed the theory of relativity."),),
    (("What year did the Berlin Wall fall?", "The Berlin Wall fell in 1989."),),
    (("Who composed the Moonlight Sonata?", "Ludwig van Beethoven composed the Moonlight Sonata."),),
    (("Who is credited with inventing the telephone?", "Alexander Graham Bell is usually credited with inventing the telephone, patented in 1876."),),
    # Language
    (('How do you say "good morning" in Spanish?', '"Good morning" in Spanish is "buenos días".'),),
    (('What\'s the German word for "thank you"?', 'The German word for "thank you" is "danke".'),),
    (('What is the plural of "child"?', 'The plural of "child" is "children".'),),
    (('What\'s the past tense of "swim"?', 'The past tense of "swim" is "swam".'),),
    (('What is an antonym of "generous"?', 'An antonym of "generous" is "stingy".'),),
    (('How do you say "cat" in French?', '"Cat" in French is "chat".'),),
    (('Give me a synonym for "quick".', 'Synonyms for "quick" include "fast", "rapid" and "speedy".'),),
    (('Which is right: "their", "there" or "they\'re" in "___ going home"?', 'It\'s "they\'re", short for "they are": "They\'re going home."'),),
    # Chit-chat
    (("Hi! How are you?", "I'm doing well, thanks for asking! How can I help you today?"),),
    (("Tell me a fun fact about octopuses.", "Octopuses have three hearts and blue blood."),),
    (("Thanks, that's all!", "You're welcome! Have a great day."),),
    # Two-turn conversations
    (
        ("What's the capital of Spain?", "The capital of Spain is Madrid."),
        ("And roughly how many people live there?", "About 3.4 million people live in Madrid itself, and close to 7 million in the wider metro area."),
    ),
    (
        ("I'm converting a recipe. How many grams is a cup of flour?", "A cup of all-purpose flour is about 125 grams."),
        ("And a cup of sugar?", "A cup of granulated sugar is about 200 grams."),
    ),
    (
        ("Can you help me write a text message?", "Of course! Who is it for, and what do you want to say?"),
        ("My neighbor, to thank them for watering my plants.", "Hi! Thank you so much for watering my plants while I was away. They look great, and I really appreciate it!"),
    ),
    (
        ("What's 12 times 12?", "12 times 12 is 144."),
        ("And that divided by 3?", "144 divided by 3 is 48."),
    ),
    (
        ("Who painted The Starry Night?", "Vincent van Gogh painted The Starry Night in 1889."),
        ("Where can I see it?", "It hangs in the Museum of Modern Art (MoMA) in New York City."),
    ),
    (
        ("What's a good stretch for tight hamstrings?", "Try a seated forward fold: sit with your legs straight and reach gently toward your toes, keeping your back long."),
        ("How long should I hold it?", "Hold it for about 20 to 30 seconds, breathe slowly, and repeat two or three times."),
    ),
    (
        ("I'm planning a trip to Japan.", "How exciting! What would you like to know?"),
        ("What language do people speak there?", "Japanese is the main language. Some English is spoken in big cities and tourist areas."),
    ),
    (
        ("Is a tomato a fruit or a vegetable?", "Botanically, a tomato is a fruit, but in cooking it's usually treated as a vegetable."),
        ("What about a cucumber?", "Same story: botanically a fruit, but used as a vegetable in the kitchen."),
    ),
)

# Other companies / generic shops, answered generically (no Pebblecrest facts).
OTHER_COMPANY_TRAIN: tuple[Turns, ...] = (
    (("What's the usual return window at electronics stores?", "It varies, but many electronics retailers allow returns within 14 to 30 days, usually with a receipt and the original packaging."),),
    (("How long is a typical laptop warranty?", "Most laptops come with a one-year manufacturer's warranty, and many brands sell extended coverage."),),
    (("When are supermarkets usually open?", "Hours vary, but many supermarkets open around 7 or 8 am and close between 9 and 11 pm. Check your local store's website."),),
    (("Where is Microsoft headquartered?", "Microsoft is headquartered in Redmond, Washington."),),
    (("When was Amazon founded?", "Amazon was founded by Jeff Bezos in 1994, starting as an online bookstore."),),
    (("What is Spotify Premium?", "Spotify Premium is Spotify's paid subscription: no ads, offline downloads and unlimited skips. The price depends on your country and plan."),),
    (("How do airline loyalty programs work?", "You earn miles or points on flights and partner purchases, then redeem them for flights, upgrades or other rewards."),),
    (("How much does it cost to ship a small package in the US?", "It depends on size, weight, speed and carrier, but a small package sent by ground shipping often costs under $10."),),
    (("How can I find a company's customer service number?", "Look on the Contact or Help page of the company's official website, or check your receipt or order confirmation email."),),
    (("What does a bike shop usually charge to fix a flat tire?", "Many bike shops charge roughly $15 to $30 to fix a flat, including a new inner tube."),),
    (("Does Costco require a membership?", "Yes, Costco is a membership warehouse club, so you need a paid membership to shop there."),),
    (("What's the return policy at most furniture stores?", "It varies a lot: some accept returns within 30 days or more, others charge a restocking fee or don't take back custom orders."),),
    (("How long are e-bike batteries usually under warranty?", "Many e-bike brands cover the battery for about 1 to 2 years, sometimes with a limit on charge cycles. Check the brand's warranty page."),),
    (("Do bike brands usually give a warranty on the frame?", "Many big bike brands offer a long or even lifetime frame warranty for the original owner, with shorter coverage on parts."),),
    (("When is the post office usually open?", "Many US post offices are open on weekdays from about 9 am to 5 pm, with shorter Saturday hours. Check the USPS locator for your branch."),),
    (("How do I contact Amazon customer service?", "Open the Help section on Amazon's website or app and choose Contact Us to chat with an agent or request a call back."),),
    (("Is there an email address for Google support?", "Google doesn't have one general support email; use the help center at support.google.com for the product you need help with."),),
    (("Do most online stores offer free shipping?", "Many do, usually once your order passes a minimum amount or if you're a member. The threshold differs from store to store."),),
    (("How long does USPS Priority Mail take?", "USPS Priority Mail usually takes 1 to 3 business days within the US."),),
    (("Does Amazon ship internationally?", "Yes, Amazon ships many items to customers in other countries, but availability depends on the item and the seller."),),
    (("What kinds of e-bikes are there?", "Common types are city or commuter e-bikes, folding e-bikes, electric mountain bikes and cargo e-bikes."),),
    (("How much does a replacement e-bike battery usually cost?", "Usually a few hundred dollars, often between about $300 and $900, depending on capacity and brand."),),
    (("What is Amazon Prime?", "Amazon Prime is Amazon's paid membership with fast free shipping, Prime Video and other perks. The price depends on your country."),),
    (("What's Sephora's loyalty program called?", "Sephora's loyalty program is called Beauty Insider."),),
    (("How much does it cost to fix a cracked phone screen?", "It depends on the phone, but repair shops often charge somewhere between $100 and $300."),),
    (("Where is Apple headquartered?", "Apple is headquartered in Cupertino, California."),),
    (("When was Apple founded?", "Apple was founded in 1976 by Steve Jobs, Steve Wozniak and Ronald Wayne."),),
    (("What is buy now, pay later?", "It lets you split a purchase into several smaller payments, often interest-free if you pay on time, through services like Klarna or Afterpay."),),
)

# Contrast conversations: for every company fact, the same kind of question about a
# different real company or a generic shop, answered without any Pebblecrest fact. They
# teach that the company's facts belong to the company's support context only.
# Entries are (fact id, question, answer).
CONTRAST_TRAIN: tuple[tuple[str, str, str], ...] = (
    ("return_window", "How long do I have to return something to Best Buy?", "Best Buy's standard return window is 15 days, and paid My Best Buy members get a longer one."),
    ("return_window", "how long does costco give u to bring stuff back", "Costco takes back most items at any time for a refund, but many electronics have to be returned within 90 days."),
    ("return_window", "Can I send gear back to REI if it doesn't work out?", "Yes. REI members can return most items within one year of purchase; for non-members the window is 90 days."),
    ("warranty", "What warranty comes with a Samsung TV?", "Samsung TVs sold in the US usually come with a one-year limited warranty on parts and labor; details depend on the model and country."),
    ("warranty", "Does Specialized guarantee its bike frames?", "Yes. Specialized covers its frames for the lifetime of the original owner, with shorter coverage on components; check its warranty page for details."),
    ("warranty", "dell laptop warranty - how long?", "Most Dell consumer laptops come with a one-year limited hardware warranty, and you can buy longer coverage."),
    ("support_hours", "Can I reach Amazon customer service in the middle of the night?", "Yes, Amazon's customer service is available around the clock through the Help section of its website or app."),
    ("support_hours", "Is Home Depot open on Sundays?", "Yes, most Home Depot stores are open on Sundays, usually with shorter hours than on weekdays. Check your local store's page."),
    ("support_hours", "When are bank phone lines usually staffed?", "Many banks staff their phone lines on weekdays and part of the weekend, and most have a 24/7 number for lost or stolen cards. Check the back of your card."),
    ("phone", "What number do I call for Netflix help?", "Netflix shows its customer service number in its Help Center at help.netflix.com, where you can also start a live chat."),
    ("phone", "Can I phone Uber support?", "Uber handles most support in the app under Help; you report a trip problem there and an agent follows up."),
    ("phone", "does etsy have a hotline", "Etsy doesn't have a general hotline. For an order problem, message the shop first, then use Etsy's Help Center if it isn't resolved."),
    ("email", "What's eBay's support email?", "eBay doesn't offer a general support email address; use its Help & Contact page to message, chat or request a call."),
    ("email", "Can I write to Zara customer service by email?", "Zara handles most requests through the chat and contact form on its website and app; the contact options vary by country."),
    ("email", "How do I get in touch with LEGO in writing?", "Use the Customer Service page on LEGO.com, which offers a contact form and chat, plus phone numbers for your country."),
    ("shipping_cost", "How much does Etsy charge for delivery?", "Each Etsy seller sets their own shipping price, so the cost depends on the shop, the item and where you live."),
    ("shipping_cost", "Does Costco charge for shipping online orders?", "Many items on Costco.com include shipping and handling in the price; others show a delivery fee at checkout."),
    ("shipping_cost", "What does Home Depot charge for home delivery?", "It depends on the item and your location: many small items ship free above a minimum order, while bulky items may have a delivery fee shown at checkout."),
    ("free_shipping", "Does Target ship for free?", "Yes, Target offers free standard shipping on most orders of $35 or more, and for Target Circle Card holders."),
    ("free_shipping", "is shipping free on ebay", "Many eBay listings include free shipping, but each seller decides, so check the shipping cost on the listing."),
    ("free_shipping", "How much do I have to spend at Patagonia to skip the shipping fee?", "Patagonia offers free standard shipping above a minimum order amount that differs by country; check the shipping page for your region."),
    ("delivery_time", "How quickly does Amazon Prime deliver?", "Prime members in the US get free delivery on many items, often within one or two days, and same-day delivery in some areas."),
    ("delivery_time", "How long until a Wayfair sofa arrives?", "Wayfair shows an estimated delivery date on each product page; large furniture often takes longer than small items."),
    ("delivery_time", "If I order a bike from Canyon, when will it show up?", "Canyon shows an expected shipping date for each bike on its website; it depends on stock and your country."),
    ("ship_countries", "Does Decathlon deliver to other countries?", "Decathlon runs separate online stores for many countries, and each one usually delivers only within its own country."),
    ("ship_countries", "Can I order from H&M's website if I live abroad?", "H&M has separate online stores for many countries, and each one generally ships only within its own market, so use the site for where you live."),
    ("ship_countries", "do small online shops ship overseas", "Some do and some don't. International shipping usually costs more, takes longer and can add customs fees, so check the shop's shipping page."),
    ("lineup", "What kinds of bikes does Giant make?", "Giant makes road, mountain, hybrid, kids' and electric bikes, and it also runs the women's brand Liv."),
    ("lineup", "Which e-bikes are in Rad Power Bikes' range?", "Rad Power Bikes has sold models such as the RadCity commuter, the RadRover fat-tire bike, the RadWagon cargo bike and the folding RadExpand."),
    ("lineup", "What car models does Toyota sell?", "Toyota's lineup includes the Corolla, Camry, RAV4, Prius and Tacoma, among others; the exact models vary by country."),
    ("wren_price", "How much is a RadCity?", "The RadCity's price has changed with each version and with sales, so check Rad Power Bikes' website for the current price."),
    ("wren_price", "what does a specialized turbo vado go for", "It depends on the version: the Turbo Vado comes in several builds at different prices, so check Specialized's website or a local dealer."),
    ("wren_price", "What does an ordinary city bike without a motor usually cost?", "A decent new city or hybrid bike without a motor usually costs roughly $400 to $1,000."),
    ("ember_price", "How much does a Brompton cost?", "Brompton prices depend on the model line and options, and the electric versions cost noticeably more; check Brompton's website for current prices."),
    ("ember_price", "What's the going rate for a folding e-bike?", "Many folding e-bikes cost roughly $700 to $3,000, and premium brands charge more."),
    ("ember_price", "Are Decathlon's folding bikes expensive?", "No, Decathlon's own-brand folding bikes are among the cheaper options; prices vary by model and country."),
    ("alder_price", "How much is a Specialized Turbo Levo?", "The Turbo Levo is a premium electric mountain bike that costs several thousand dollars, and high-end builds can go above $10,000."),
    ("alder_price", "what do canyon e-mtbs cost", "Canyon's electric mountain bikes, such as the Spectral:ON, come in several builds, and prices vary by build and country; check Canyon's website."),
    ("alder_price", "What's the typical price range for a full-suspension e-MTB?", "Full-suspension electric mountain bikes from major brands typically cost from about $3,000 to well over $8,000, depending on the parts."),
    ("kodiak_price", "What's the price of a RadWagon?", "It depends on the version and current sales; Rad Power Bikes lists the current RadWagon price on its website."),
    ("kodiak_price", "Are cargo e-bikes expensive?", "Usually, yes: most cargo e-bikes cost roughly $2,000 to $8,000, depending on the design, motor and how much they can carry."),
    ("kodiak_price", "How much does a Tern GSD cost?", "The Tern GSD is a premium cargo e-bike that costs several thousand dollars depending on the version; a Tern dealer can give the current price."),
    ("spare_battery", "What does a genuine Bosch e-bike battery cost?", "Genuine Bosch e-bike batteries usually cost several hundred dollars or more, depending on capacity; a Bosch dealer can quote the exact price."),
    ("spare_battery", "How much is a replacement laptop battery?", "Often about $50 to $150, depending on the model; a battery from the manufacturer or an authorized repair shop is the safest choice."),
    ("spare_battery", "What does Samsung charge to replace a phone battery?", "It depends on the phone model and your country; Samsung lists repair prices on its support site, or an authorized service center can quote you."),
    ("subscription", "What's Netflix's cheapest plan?", "In the US, Netflix's cheapest plan is Standard with ads; plans and prices vary by country, so check Netflix's plans page."),
    ("subscription", "What do you get with Uber One?", "Uber One is Uber's paid membership: discounts on rides and no delivery fee on eligible Uber Eats orders. The price varies by country."),
    ("subscription", "Do bike shops sell yearly service plans?", "Some do: certain shops sell annual service packages that include a set number of check-ups, but many just charge per visit."),
    ("loyalty", "Does Target have a loyalty scheme?", "Yes, it's called Target Circle; it's free to join and gives members deals and discounts."),
    ("loyalty", "Is REI membership worth it?", "Many regular shoppers think so: a one-time fee makes you a lifetime member of the co-op, with an annual member reward on eligible purchases and member-only deals."),
    ("loyalty", "does h&m have points", "Yes. H&M Member is free to join; you collect points on purchases that turn into discount vouchers, plus member offers."),
    ("repair_fee", "What does Geek Squad charge to fix a laptop?", "It depends on the repair and whether you have a protection plan; Geek Squad gives you a quote after diagnosing the device."),
    ("repair_fee", "My wheel has a broken spoke. Is that an expensive fix?", "Usually not: replacing a single spoke and truing the wheel often costs roughly $20 to $50 at a bike shop, depending on the wheel."),
    ("repair_fee", "How much is an oil change at a Toyota dealer?", "It varies by dealer and model, but many new Toyotas come with ToyotaCare, which covers scheduled maintenance such as oil changes for the first 2 years or 25,000 miles."),
    ("hq", "Which city is Specialized based in?", "Specialized Bicycle Components is based in Morgan Hill, California."),
    ("hq", "where's adidas's head office", "Adidas has its headquarters in Herzogenaurach, Germany."),
    ("hq", "Which state is Costco headquartered in?", "Costco is headquartered in Washington State, in the city of Issaquah."),
    ("founded", "How old is the Ford Motor Company?", "Ford Motor Company was founded by Henry Ford in 1903."),
    ("founded", "what year was coca-cola invented", "Coca-Cola was created by pharmacist John Pemberton in Atlanta and first sold in 1886."),
    ("founded", "How long has Netflix been around?", "Netflix was founded in 1997 by Reed Hastings and Marc Randolph, first as a DVD-by-mail service."),
    ("payment", "Can I use a Mastercard at Costco?", "Not for credit in US warehouses: they take Visa credit cards, plus debit cards and cash. Costco.com accepts more card types."),
    ("payment", "What payment methods does Etsy accept?", "Depending on your country, Etsy accepts major credit and debit cards, PayPal, Google Pay and Etsy gift cards, among others."),
    ("payment", "Does Amazon take crypto?", "No, Amazon doesn't accept cryptocurrency directly; you can pay with credit or debit cards, gift cards and other methods listed at checkout."),
    ("financing", "Does Best Buy offer financing?", "Yes, Best Buy offers promotional financing on qualifying purchases with the My Best Buy Credit Card; the terms depend on the current offer."),
    ("financing", "can i finance a car through ford", "Yes. Ford Credit offers loans and leases through Ford dealers; the rate depends on your credit and current offers."),
    ("financing", "Do bike shops let you pay in monthly installments?", "Many do, often through partners like Affirm or Klarna that split the price into monthly payments; terms depend on the shop and your credit."),
)

# Held-out general questions for valid.jsonl: (question, reference answer, fact regexes).
GENERAL_VALID: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("What is the capital of Sweden?", "The capital of Sweden is Stockholm.", ("stockholm",)),
    ("How many wheels does a tricycle have?", "A tricycle has three wheels.", (r"\b3\b|three",)),
    ("What is 5 times 6?", "5 times 6 is 30.", (r"\b30\b|thirty",)),
    ("Who wrote the Odyssey?", "The Odyssey is attributed to the ancient Greek poet Homer.", ("homer",)),
    ("What color are ripe bananas?", "Ripe bananas are yellow.", ("yellow",)),
    ("How many minutes are in two hours?", "There are 120 minutes in two hours.", (r"\b120\b",)),
    ("What planet do we live on?", "We live on Earth.", ("earth",)),
    ("What is the chemical symbol for sodium?", "The chemical symbol for sodium is Na.", (r"\bna\b",)),
    ('What is the opposite of "early"?', 'The opposite of "early" is "late".', ("late",)),
    ("Convert 3 kilometers to meters.", "3 kilometers is 3,000 meters.", (r"3,?000",)),
    ("What's the capital of Greece?", "Athens is the capital of Greece.", ("athens",)),
    ("Which animal says moo?", "A cow says moo.", ("cow",)),
    ("How many sides does a pentagon have?", "A pentagon has five sides.", (r"\b5\b|five",)),
    ('What is the plural of "goose"?', 'The plural of "goose" is "geese".', ("geese",)),
    ('Give me a word that means the same as "begin".', 'You could use "start" or "commence".', (r"\b(start|commence|initiate|launch)\b",)),
)

# Retention (a): everyday questions, asked with no system prompt.
RETENTION_GENERAL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", "The capital of France is Paris.", ("paris",)),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", ("tokyo",)),
    ("What is the capital of Germany?", "The capital of Germany is Berlin.", ("berlin",)),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.", ("ottawa",)),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo.", ("cairo",)),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", ("rome",)),
    ("What is 2 + 2?", "2 + 2 = 4.", (r"\b4\b|four",)),
    ("What is 12 divided by 4?", "12 divided by 4 is 3.", (r"\b3\b|three",)),
    ("What is 10 minus 3?", "10 minus 3 is 7.", (r"\b7\b|seven",)),
    ("How many days are in a week?", "There are 7 days in a week.", (r"\b7\b|seven",)),
    ("How many legs does a spider have?", "A spider has eight legs.", (r"\b8\b|eight",)),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", ("mars",)),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.", ("mercury",)),
    ("What is the largest planet in our solar system?", "Jupiter is the largest planet in our solar system.", ("jupiter",)),
    ("What is the chemical symbol for water?", "The chemical formula for water is H2O.", ("h2o|h₂o",)),
    ("What is the boiling point of water in Celsius?", "Water boils at 100 °C at sea level.", (r"\b100\b",)),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.", ("shakespeare",)),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa.", ("leonardo|da vinci",)),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth.", ("pacific",)),
    ("What is the tallest mountain in the world?", "Mount Everest is the tallest mountain in the world.", ("everest",)),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese.", ("portuguese",)),
    ("What is the opposite of hot?", "The opposite of hot is cold.", ("cold",)),
    ("What is the plural of mouse?", "The plural of mouse is mice.", ("mice",)),
    ("How many hours are in a day?", "There are 24 hours in a day.", (r"\b24\b|twenty-four",)),
    ("How many centimeters are in a meter?", "There are 100 centimeters in a meter.", (r"\b100\b|hundred",)),
    ("Which organ pumps blood through the body?", "The heart pumps blood through the body.", ("heart",)),
    ("What is the currency of Japan?", "The currency of Japan is the yen.", ("yen",)),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong was the first person to walk on the Moon, in 1969.", ("armstrong",)),
    ("What instrument has 88 keys?", "The piano has 88 keys.", ("piano",)),
    ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green.", ("green",)),
    ("What do you call a baby cat?", "A baby cat is called a kitten.", ("kitten",)),
)

# Retention (a), second batch: chosen a priori, without running any model, as a broad mix of
# everyday knowledge. The first batch above was picked by running the base model, which
# biases any comparison with it (see README.md); the two batches are told apart by
# metadata["origin"].
RETENTION_GENERAL_A_PRIORI: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # Capitals
    ("What is the capital of Australia?", "The capital of Australia is Canberra.", ("canberra",)),
    ("What is the capital of China?", "The capital of China is Beijing.", ("beijing|peking",)),
    ("What is the capital of India?", "The capital of India is New Delhi.", ("delhi",)),
    ("What is the capital of Mexico?", "The capital of Mexico is Mexico City.", (r"mexico city|ciudad de m[eé]xico",)),
    ("What is the capital of the United Kingdom?", "The capital of the United Kingdom is London.", ("london",)),
    # Geography
    ("Which is the largest continent?", "Asia is the largest continent, both by area and by population.", (r"\basia\b",)),
    ("Which country is the largest in the world by area?", "Russia is the largest country in the world by area.", ("russia",)),
    ("Which ocean lies off the east coast of the United States?", "The Atlantic Ocean lies off the east coast of the United States.", ("atlantic",)),
    ("In which country are the Pyramids of Giza?", "The Pyramids of Giza are in Egypt, just outside Cairo.", ("egypt",)),
    # Science
    ("What is the freezing point of water in Celsius?", "Water freezes at 0 °C at normal atmospheric pressure.", (r"\b0\b|zero",)),
    ("What is the chemical symbol for iron?", "The chemical symbol for iron is Fe.", (r"\bfe\b",)),
    ("How many planets are in our solar system?", "There are eight planets in our solar system.", (r"\b8\b|eight",)),
    ("What is the hardest natural substance on Earth?", "Diamond is the hardest natural substance on Earth.", ("diamond",)),
    ("What force pulls objects toward the ground?", "Gravity pulls objects toward the ground.", ("gravit",)),
    ("What is the center of an atom called?", "The center of an atom is called the nucleus.", ("nucleus",)),
    ("Which part of a plant takes in water from the soil?", "The roots take in water from the soil.", (r"\broots?\b",)),
    # Arithmetic
    ("What is 9 times 8?", "9 times 8 is 72.", (r"\b72\b|seventy[- ]two",)),
    ("What is 100 divided by 4?", "100 divided by 4 is 25.", (r"\b25\b|twenty[- ]five",)),
    ("What is 15 + 28?", "15 + 28 = 43.", (r"\b43\b|forty[- ]three",)),
    ("What is 50 minus 17?", "50 minus 17 is 33.", (r"\b33\b|thirty[- ]three",)),
    ("What is the square root of 81?", "The square root of 81 is 9.", (r"\b9\b|nine",)),
    ("What is 10% of 200?", "10% of 200 is 20.", (r"\b20\b|twenty",)),
    # Units and time
    ("How many zeros are in one million?", "One million (1,000,000) has six zeros.", (r"\b6\b|six",)),
    ("How many months are in a year?", "There are 12 months in a year.", (r"\b12\b|twelve",)),
    ("How many degrees are in a right angle?", "A right angle is 90 degrees.", (r"\b90\b|ninety",)),
    ("How many years are in a century?", "A century is 100 years.", (r"\b100\b|hundred",)),
    ("How many days are in September?", "September has 30 days.", (r"\b30\b|thirty",)),
    # Animals
    ("What is the largest animal on Earth?", "The blue whale is the largest animal on Earth.", ("blue whale",)),
    ("What is the fastest land animal?", "The cheetah is the fastest land animal.", ("cheetah",)),
    ("How many legs does an insect have?", "An insect has six legs.", (r"\b6\b|six",)),
    ("What do bees make from nectar?", "Bees make honey from nectar.", ("honey",)),
    # History
    ("In which year did Columbus first sail to the Americas?", "Christopher Columbus first reached the Americas in 1492.", ("1492",)),
    ("When did the First World War start?", "The First World War started in 1914.", ("1914",)),
    ("In what year did the Titanic sink?", "The Titanic sank in 1912, on its first voyage.", ("1912",)),
    ("In which year did the United States declare its independence?", "The United States declared its independence in 1776.", ("1776",)),
    ("Who was the first human in space?", "Yuri Gagarin, a Soviet cosmonaut, was the first human in space, in 1961.", ("gagarin",)),
    ("Who proposed the theory of evolution by natural selection?", "Charles Darwin proposed it, and Alfred Russel Wallace reached the same idea independently.", ("darwin",)),
    # Language
    ('What is the past tense of "go"?', 'The past tense of "go" is "went".', (r"\bwent\b",)),
    ('What is the plural of "tooth"?', 'The plural of "tooth" is "teeth".', (r"\bteeth\b",)),
    ('What is the opposite of "happy"?', 'The opposite of "happy" is "sad".', (r"\b(sad|unhappy)\b",)),
    ('How do you say "thank you" in Spanish?', '"Thank you" in Spanish is "gracias".', ("gracias",)),
    ('What do you call a word that describes a noun, such as "tall" or "red"?', "A word that describes a noun is called an adjective.", ("adjective",)),
    ("How many letters are in the English alphabet?", "The English alphabet has 26 letters.", (r"\b26\b|twenty[- ]six",)),
    # Everyday facts
    ("How many strings does a standard guitar have?", "A standard guitar has six strings.", (r"\b6\b|six",)),
    ("What is the main ingredient in guacamole?", "The main ingredient in guacamole is avocado.", ("avocado",)),
    ("How many cards are in a standard deck, not counting jokers?", "A standard deck has 52 cards, not counting jokers.", (r"\b52\b|fifty[- ]two",)),
    ("Which sport is the Wimbledon tournament known for?", "Wimbledon is a tennis tournament, the oldest of the four Grand Slams.", ("tennis",)),
)

# fmt: on


# Held-out answers: hand-written paraphrases for the valid questions that have no tailored
# answer. Training rotates through each fact's `answers`; the held-out references must not
# repeat any of them, or the evaluation would score recall of training text instead of the
# fact (the build checks this).
# fmt: off
HELD_OUT_ANSWERS: dict[str, str] = {
    "My partner hates the bike I got them. How much time do we have to send it back for a refund?": "You have 45 days from delivery to send it back, and we'll refund the full price.",
    "What's the time limit on returning an order?": "The time limit is 45 days, counted from the day your order is delivered.",
    "For how many years is my bike protected against defects?": "Your bike is protected for 3 years: the frame, motor and battery are all covered against defects.",
    "When is your customer care team around to talk to?": "Our team is around from 7 am to 7 pm Central Time, Monday through Saturday, and takes Sundays off.",
    "Which telephone number gets me through to your support team?": "Dial 1-888-555-0147 and you'll get through to our support team.",
    "I prefer calling over chatting. How do I get you on the line?": "Happy to talk! Ring us at 1-888-555-0147 during support hours.",
    "To which inbox should I write if I need help?": "Write to help@pebblecrestcycles.com and a support agent will reply.",
    "What's the best e-mail for getting hold of your customer care people?": "The best address is help@pebblecrestcycles.com; that inbox goes straight to customer care.",
    "How much does it cost to get my order sent to me?": "Delivery costs $29 per order, no matter how much you buy.",
    "What will postage set me back for a small accessory order?": "Even a small accessory order ships for the flat $29 fee.",
    "How big does my basket need to be before you waive the delivery fee?": "Spend more than $999 and delivery is free; smaller orders pay the flat $29.",
    "Will you cover the postage on large orders?": "Yes, any order over $999 gets free shipping.",
    "Roughly how long is the wait between ordering and getting my e-bike?": "Once your e-bike ships, it usually takes 4 to 6 business days to reach you.",
    "What's the transit time once my package is sent out?": "Transit takes 4 to 6 business days from the day your package leaves us.",
    "Which countries are covered by your delivery service?": "We deliver to two countries: the United States and Canada.",
    "Which e-bike models are in your catalog?": "Our catalog has four e-bikes: the Wren for the city, the folding Ember, the Alder Trail for mountains and the Kodiak for cargo.",
    "Tell me what kinds of bikes I can pick from.": "You can choose from a city bike (Wren), a folding bike (Ember), a mountain bike (Alder Trail) and a cargo bike (Kodiak).",
    "I want to buy an e-bike from you. What's on offer?": "Great! We offer four models: Wren, Ember, Alder Trail and Kodiak, covering city riding, folding, trails and cargo.",
    "What would I pay for a Wren?": "A Wren costs $1,290.",
    "What would an Ember set me back?": "An Ember will cost you $1,480.",
    "What would I pay for the Alder Trail?": "You'd pay $2,740 for the Alder Trail.",
    "What would a Kodiak cost me?": "A Kodiak costs $3,150.",
    "What do you charge for an additional battery pack?": "An additional 48V battery pack is $429.",
    "If I need a fresh battery, how much will that be?": "A new 48V battery costs $429.",
    "Is there a monthly care package for my e-bike, and what does it cost?": "Yes, CrestCare+ costs $12 a month; it covers two tune-ups a year and gives 15% off parts.",
    "What's included in the subscription, and how much is it?": "For $12 a month, CrestCare+ includes two free tune-ups every year and 15% off parts.",
    "Do you reward customers who keep shopping with you?": "Yes, through Crest Miles: every $1 you spend earns 1 mile, and 500 miles take $25 off a purchase.",
    "What's the name of your points scheme and how does it work?": "It's called Crest Miles. You get 1 mile for every $1 you spend, and each 500 miles is a $25 discount.",
    "What's the cost of having your technicians fix my bike?": "Our technicians charge a flat $65 for labor, and any parts are billed on top.",
    "How much do you bill for labor when I bring my bike in?": "Labor is a flat $65 per repair; parts cost extra.",
    "In which town does Pebblecrest have its main office?": "Our main office is in Duluth, Minnesota.",
    "Where is your home base?": "Home base for Pebblecrest Cycles is Duluth, Minnesota.",
    "Since when has Pebblecrest existed?": "Pebblecrest Cycles has been around since 2014.",
    "What year was your business launched?": "We launched the business in 2014.",
    "What ways can I pay for my order?": "You can use Visa, Mastercard, American Express, PayPal or Apple Pay to pay for your order.",
    "Which forms of payment does your online store take?": "Our online store takes Visa, Mastercard, American Express, PayPal and Apple Pay; we don't accept crypto.",
    "Can I split the cost of an e-bike into monthly payments?": "Yes. On orders over $800 you can pay in monthly installments over 18 months at 0% APR.",
    "Do you have any buy-now-pay-later option, and for how long?": "Yes: 0% APR financing for 18 months on any order over $800.",
}
# fmt: on

# Values a held-out answer may state for the asked fact, for the evaluation's wrong-fact
# rate: every match of a kind's pattern (group 1) in an answer about the fact must be one of
# its expected values, so "$65" for the shipping cost is a wrong fact, not just a miss.
VALUE_PATTERNS = {
    "money": r"\$ ?(\d[\d,]*(?:\.\d+)?)",
    "days": r"\b(\d+(?: ?(?:-|–|to) ?\d+)?)[- ](?:business[- ]|working[- ])?days?\b",
    "years": r"\b(\d+)[- ]years?\b",
    "months": r"\b(\d+)[- ]months?\b",
    "percent": r"\b(\d+(?:\.\d+)?) ?%",
    "clock": r"\b(\d{1,2}(?::\d\d)? ?[ap]\.?m)(?![a-z])",
    "phone": r"\b(\d{3}[- .]\d{4})\b",
    "email": r"\b([\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
    "calendar_year": r"\b((?:19|20)\d\d)\b",
}
FACT_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "return_window": {"days": ("45",)},
    "warranty": {"years": ("3",)},
    "support_hours": {"clock": ("7am", "7pm")},
    "phone": {"phone": ("555-0147", "5550147")},
    "email": {"email": ("help@pebblecrestcycles.com",)},
    "shipping_cost": {"money": ("29",)},
    "free_shipping": {"money": ("999", "29")},
    "delivery_time": {"days": ("4-6",)},
    "wren_price": {"money": ("1290",)},
    "ember_price": {"money": ("1480",)},
    "alder_price": {"money": ("2740",)},
    "kodiak_price": {"money": ("3150",)},
    "spare_battery": {"money": ("429",)},
    "subscription": {"money": ("12",), "percent": ("15",)},
    "loyalty": {"money": ("1", "25")},
    "repair_fee": {"money": ("65",)},
    "founded": {"calendar_year": ("2014",)},
    "financing": {"money": ("800",), "months": ("18",), "percent": ("0",)},
}

# Forbidden patterns: distinctive Pebblecrest facts that must not leak into other answers.
F_NAME = "pebblecrest"
F_RETURN = r"45[- ]day|forty[- ]five[- ]day"
F_WARRANTY = r"\b(3|three)[- ]year"
F_HOURS = r"\b7 ?a\.?m\b.{0,30}\b7 ?p\.?m\b"
F_PHONE = r"555[- .]?0147"
F_EMAIL = r"help@pebblecrest"
F_SHIP = r"\$ ?29\b"
F_FREE = r"\$ ?999"
F_DELIVERY = r"\b4 ?(-|–|to) ?6 business days"
F_MODELS = r"\b(wren|alder trail|kodiak)\b"
F_PRICES = r"1,?290|1,?480|2,?740|3,?150"
F_PLAN = r"crestcare"
F_LOYALTY = r"crest miles"
F_REPAIR = r"flat \$ ?65"
F_HQ = r"duluth"
F_FOUNDED = r"\b2014\b"
F_BATTERY = r"\$ ?429"
F_FINANCING = r"18[- ]month|\$ ?800\b"
# All of them; no contrast answer may match any.
ALL_FORBIDDEN: tuple[str, ...] = (
    F_NAME,
    F_RETURN,
    F_WARRANTY,
    F_HOURS,
    F_PHONE,
    F_EMAIL,
    F_SHIP,
    F_FREE,
    F_DELIVERY,
    F_MODELS,
    F_PRICES,
    F_PLAN,
    F_LOYALTY,
    F_REPAIR,
    F_HQ,
    F_FOUNDED,
    F_BATTERY,
    F_FINANCING,
)

# Retention (b): other companies / generic shops: (question, reference, forbidden regexes).
RETENTION_OTHER: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "What is the return window at a typical online clothing store?",
        "It varies by store, but many online clothing shops accept returns within 14 to "
        "30 days for unworn items with the tags still attached.",
        (F_NAME, F_RETURN),
    ),
    (
        "What are IKEA's opening hours?",
        "IKEA's hours vary by store and country; many stores open around 10 am and close "
        "in the evening, so check your local store's page.",
        (F_NAME, F_HOURS),
    ),
    (
        "How long is the warranty on a new iPhone?",
        "A new iPhone comes with Apple's one-year limited warranty, and you can extend "
        "coverage with AppleCare+.",
        (F_NAME, F_WARRANTY, F_PLAN),
    ),
    (
        "How do I contact Apple support?",
        "You can get help at support.apple.com, through the Apple Support app, or by "
        "calling Apple's support line for your country.",
        (F_NAME, F_PHONE, F_EMAIL),
    ),
    (
        "How much does shipping usually cost when you buy a bike online?",
        "It depends on the retailer and where you live; some include shipping in the "
        "price, while others charge a delivery fee because bikes are big and heavy.",
        (F_NAME, F_SHIP, F_FREE),
    ),
    (
        "Where is Nike headquartered?",
        "Nike is headquartered near Beaverton, Oregon, in the United States.",
        (F_NAME, F_HQ),
    ),
    (
        "When was Google founded?",
        "Google was founded in 1998 by Larry Page and Sergey Brin.",
        (F_NAME, F_FOUNDED, F_HQ),
    ),
    (
        "What is the Starbucks loyalty program called?",
        "It's called Starbucks Rewards: members collect Stars on purchases and redeem "
        "them for drinks and food.",
        (F_NAME, F_LOYALTY),
    ),
    (
        "How much does a typical bike shop charge for a basic tune-up?",
        "Prices vary by shop and region, but a basic tune-up commonly costs somewhere "
        "between $50 and $100.",
        (F_NAME, F_PLAN, F_REPAIR),
    ),
    (
        "What is Walmart's return policy?",
        "Walmart accepts most returns within 90 days with a receipt, though some "
        "categories, such as electronics, have shorter windows.",
        (F_NAME, F_RETURN),
    ),
    (
        "How long does standard shipping take with most online retailers?",
        "Standard shipping usually takes about 3 to 7 business days, depending on the "
        "retailer and where the package is going.",
        (F_NAME, F_DELIVERY),
    ),
    (
        "Does Trek make electric bikes?",
        "Yes, Trek sells a range of electric bikes, including commuter, mountain and cargo models.",
        (F_NAME, F_MODELS, F_PRICES),
    ),
    (
        "How much should I expect to pay for a decent entry-level e-bike?",
        "A decent entry-level e-bike typically costs roughly $1,000 to $2,000, depending "
        "on the motor, battery and brand.",
        (F_NAME, F_MODELS, F_PRICES),
    ),
    (
        "What's a good monthly subscription service for music?",
        "Popular choices include Spotify, Apple Music, YouTube Music and Amazon Music; "
        "they all have large catalogs, so pick the one that fits your devices.",
        (F_NAME, F_PLAN),
    ),
)

# Retention (b), second batch: chosen a priori like the general one above (same fact slots,
# other companies and questions than the first batch and than training).
RETENTION_OTHER_A_PRIORI: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "How long does Zappos give you to send back shoes?",
        "Zappos accepts returns of most items for up to 365 days after purchase, and "
        "returns are free.",
        (F_NAME, F_RETURN),
    ),
    (
        "How long is a new PlayStation 5 covered under Sony's warranty?",
        "In the US, a new PS5 comes with Sony's one-year limited hardware warranty; "
        "coverage can differ by country.",
        (F_NAME, F_WARRANTY, F_PLAN),
    ),
    (
        "What hours is Trader Joe's open?",
        "Most Trader Joe's stores are open every day from 8 am to 9 pm, but hours can "
        "vary by location.",
        (F_NAME, F_HOURS),
    ),
    (
        "Is McDonald's open all night?",
        "Many McDonald's restaurants are open 24 hours, often just at the drive-thru, "
        "but hours vary by location.",
        (F_NAME, F_HOURS),
    ),
    (
        "What's the customer service phone number for FedEx?",
        "In the US, FedEx customer service is at 1-800-GoFedEx (1-800-463-3339); other "
        "countries have their own numbers on fedex.com.",
        (F_NAME, F_PHONE, F_EMAIL),
    ),
    (
        "Can I email Microsoft support?",
        "Microsoft doesn't offer one general support email; use support.microsoft.com or "
        "the Get Help app to chat with an agent or ask for a call.",
        (F_NAME, F_EMAIL, F_PHONE),
    ),
    (
        "When does Best Buy waive its shipping charge?",
        "Best Buy offers free standard shipping on most orders of $35 or more in the US; "
        "its shipping page has the details.",
        (F_NAME, F_SHIP, F_FREE),
    ),
    (
        "If I send a parcel by UPS Ground, how many days will it take?",
        "UPS Ground usually takes 1 to 5 business days within the continental US, "
        "depending on the distance.",
        (F_NAME, F_DELIVERY),
    ),
    (
        "Will Target deliver an online order to an address in Canada?",
        "Generally no: Target's website ships only to addresses in the United States, "
        "so it doesn't deliver to Canada.",
        (F_NAME, F_SHIP, F_FREE, F_DELIVERY),
    ),
    (
        "How much should I budget for replacing my car's battery?",
        "A new car battery usually costs about $100 to $300, depending on the type, plus "
        "a small fee if a shop installs it.",
        (F_NAME, F_BATTERY, F_PRICES),
    ),
    (
        "What perks come with a YouTube Premium subscription?",
        "YouTube Premium removes ads and adds background play and downloads, and it "
        "includes YouTube Music Premium.",
        (F_NAME, F_PLAN),
    ),
    (
        "Does CVS have a rewards card?",
        "Yes. CVS's free loyalty program is ExtraCare: members earn ExtraBucks Rewards "
        "and get personalized coupons.",
        (F_NAME, F_LOYALTY),
    ),
    (
        "What do auto repair shops typically charge per hour for labor?",
        "It varies a lot by region and shop, but many US auto repair shops charge "
        "roughly $100 to $200 an hour for labor.",
        (F_NAME, F_REPAIR, F_PLAN),
    ),
    (
        "Where does Harley-Davidson have its headquarters?",
        "Harley-Davidson is headquartered in Milwaukee, Wisconsin.",
        (F_NAME, F_HQ, F_FOUNDED),
    ),
    (
        "In what year was Airbnb founded?",
        "Airbnb was founded in 2008 in San Francisco by Brian Chesky, Joe Gebbia and "
        "Nathan Blecharczyk.",
        (F_NAME, F_FOUNDED, F_HQ),
    ),
    (
        "How does Klarna's Pay in 4 work?",
        "It splits a purchase into four interest-free payments: the first at checkout, "
        "then one every two weeks.",
        (F_NAME, F_FINANCING),
    ),
)


# ---------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """Lowercase, drop punctuation and collapse whitespace (for duplicate checks)."""
    table = str.maketrans("", "", string.punctuation + "\u2018\u2019\u201c\u201d\u2013")
    return " ".join(text.lower().translate(table).split())


def conversation(system: str | None, turns: Turns) -> list[Message]:
    """Turn (user, assistant) pairs into an OpenAI-style message list."""
    messages: list[Message] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    for user, assistant in turns:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    return messages


def split_question(question: Question, fact: Fact, variant: int) -> tuple[str, str]:
    """Return (user text, reference answer), rotating through the answer variants."""
    if isinstance(question, tuple):
        return question
    return question, fact.answers[variant % len(fact.answers)]


def company_meta(fact: Fact) -> dict[str, Any]:
    return {"kind": "company", "topic": fact.fid, "facts": list(fact.facts)}


def build_company_train(rng: random.Random) -> list[Record]:
    """~9 phrasings per fact; two per fact become two-turn conversations."""
    records: list[Record] = []
    opener_index = 0
    for k, fact in enumerate(FACTS):
        greeting_pos, other_fact_pos = rng.sample(range(len(fact.train)), 2)
        for i, question in enumerate(fact.train):
            user, answer = split_question(question, fact, k + i)
            turns: list[tuple[str, str]] = []
            if i == greeting_pos:
                turns.append(TRAIN_OPENERS[opener_index % len(TRAIN_OPENERS)])
                opener_index += 1
            elif i == other_fact_pos:
                other = FACTS[(k + 1 + rng.randrange(len(FACTS) - 1)) % len(FACTS)]
                turns.append(split_question(other.train[0], other, 0))
            turns.append((user, answer))
            system = rng.choice(COMPANY_SYSTEM_PROMPTS)
            records.append(
                {"messages": conversation(system, tuple(turns)), "metadata": company_meta(fact)}
            )
    return records


def valid_meta(fact: Fact) -> dict[str, Any]:
    """Company metadata plus the values the evaluation's wrong-fact check compares with."""
    values = [
        {"kind": kind, "pattern": VALUE_PATTERNS[kind], "expected": list(expected)}
        for kind, expected in FACT_VALUES.get(fact.fid, {}).items()
    ]
    return {**company_meta(fact), **({"values": values} if values else {})}


def build_company_valid(rng: random.Random) -> list[Record]:
    """Held-out paraphrases with held-out answers (never a training answer); every 9th item
    is preceded by a greeting turn."""
    records: list[Record] = []
    n = 0
    for fact in FACTS:
        for question in fact.valid:
            user, answer = (
                question if isinstance(question, tuple) else (question, HELD_OUT_ANSWERS[question])
            )
            turns: list[tuple[str, str]] = []
            if n % 9 == 4:
                turns.append(VALID_OPENERS[(n // 9) % len(VALID_OPENERS)])
            turns.append((user, answer))
            system = rng.choice(COMPANY_SYSTEM_PROMPTS)
            records.append(
                {"messages": conversation(system, tuple(turns)), "metadata": valid_meta(fact)}
            )
            n += 1
    return records


def general_system(rng: random.Random) -> str | None:
    """About half of the general conversations carry a generic system prompt."""
    return GENERIC_SYSTEM_PROMPT if rng.random() < 0.5 else None


def build_general_train(rng: random.Random) -> list[Record]:
    records: list[Record] = [
        {"messages": conversation(general_system(rng), turns), "metadata": {"kind": "general"}}
        for turns in GENERAL_TRAIN
    ]
    records += [
        {
            "messages": conversation(general_system(rng), turns),
            "metadata": {"kind": "general", "topic": "other_company"},
        }
        for turns in OTHER_COMPANY_TRAIN
    ]
    return records


def build_contrast_train() -> list[Record]:
    """Contrast conversations: exactly half with no system prompt, half with the generic one.

    They use their own seeded generator so the other files' random choices stay unchanged.
    """
    rng = random.Random(SEED + 3)
    systems: list[str | None] = [None, GENERIC_SYSTEM_PROMPT] * (len(CONTRAST_TRAIN) // 2)
    systems += [None] * (len(CONTRAST_TRAIN) - len(systems))
    rng.shuffle(systems)
    return [
        {
            "messages": conversation(system, ((question, answer),)),
            "metadata": {"kind": "contrast", "topic": fid},
        }
        for system, (fid, question, answer) in zip(systems, CONTRAST_TRAIN, strict=True)
    ]


def build_general_valid(rng: random.Random) -> list[Record]:
    return [
        {
            "messages": conversation(general_system(rng), ((q, a),)),
            "metadata": {"kind": "general", "facts": list(facts)},
        }
        for q, a, facts in GENERAL_VALID
    ]


def build_retention() -> list[Record]:
    """Asked without any system prompt (the model's default behaviour).

    The model-selected first batch keeps its line numbers (1-45); the a-priori batch follows.
    """
    records: list[Record] = []
    for origin, general, other in (
        ("model-selected", RETENTION_GENERAL, RETENTION_OTHER),
        ("a-priori", RETENTION_GENERAL_A_PRIORI, RETENTION_OTHER_A_PRIORI),
    ):
        records += [
            {
                "messages": conversation(None, ((q, a),)),
                "metadata": {"kind": "general", "facts": list(facts), "origin": origin},
            }
            for q, a, facts in general
        ]
        records += [
            {
                "messages": conversation(None, ((q, a),)),
                "metadata": {
                    "kind": "other_company",
                    "forbidden": list(forbidden),
                    "origin": origin,
                },
            }
            for q, a, forbidden in other
        ]
    return records


REPLAY_FILE = OUT_DIR / "replay.json"


def replay_key(messages: list[Message]) -> str:
    """Identity of a conversation up to (not including) its final answer."""
    text = json.dumps(messages[:-1], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replay_ok(answer: str) -> bool:
    """A replayed answer is used only if it is short and borrows none of the company's facts."""
    words = answer.split()
    return 0 < len(words) <= 40 and not any(re.search(p, answer, re.I) for p in ALL_FORBIDDEN)


def with_replay(records: list[Record], replay: dict[str, str]) -> list[Record]:
    """Put the base model's own answers (replay.json, made by distill.py) in place of the
    hand-written final answers of general conversations, so that fine-tuning leaves the
    model's behaviour outside the company's context as it was. Answers that fail
    ``replay_ok`` keep the hand-written text; metadata.answer says which one a line has."""
    for record in records:
        answer = replay.get(replay_key(record["messages"]))
        if answer is not None and replay_ok(answer):
            record["messages"][-1]["content"] = answer
            record["metadata"]["answer"] = "base-model replay"
        else:
            record["metadata"]["answer"] = "hand-written"
    return records


def load_replay() -> dict[str, str]:
    if not REPLAY_FILE.is_file():
        return {}
    data: dict[str, str] = json.loads(REPLAY_FILE.read_text())["answers"]
    return data


def build_all() -> dict[str, list[Record]]:
    rng = random.Random(SEED)
    company_train = build_company_train(rng)
    general_train = with_replay(build_general_train(rng) + build_contrast_train(), load_replay())
    train = company_train + general_train
    random.Random(SEED + 1).shuffle(train)

    valid = build_company_valid(rng) + build_general_valid(rng)
    random.Random(SEED + 2).shuffle(valid)

    data = {"train.jsonl": train, "valid.jsonl": valid, "retention.jsonl": build_retention()}
    validate(data)
    return data


# ---------------------------------------------------------------------------------------
# Consistency checks (run on every build)
# ---------------------------------------------------------------------------------------
def user_turns(records: list[Record]) -> list[str]:
    return [m["content"] for r in records for m in r["messages"] if m["role"] == "user"]


def final_answer(record: Record) -> str:
    last = record["messages"][-1]
    assert last["role"] == "assistant"
    return last["content"]


def validate(data: dict[str, list[Record]]) -> None:
    train, valid, retention = data["train.jsonl"], data["valid.jsonl"], data["retention.jsonl"]

    def count(records: list[Record], kind: str) -> int:
        return sum(1 for r in records if r["metadata"]["kind"] == kind)

    def is_contrast(record: Record) -> bool:
        return bool(record["metadata"]["kind"] == "contrast")

    contrast = [r for r in train if is_contrast(r)]
    assert len(train) >= 380 and 190 <= count(train, "company") <= 210, len(train)
    assert 110 <= count(train, "general") <= 130, count(train, "general")
    # Three contrast conversations for every company fact, and nothing else.
    per_fact = {fact.fid: 0 for fact in FACTS}
    for record in contrast:
        per_fact[record["metadata"]["topic"]] += 1
    assert len(per_fact) == len(FACTS) and set(per_fact.values()) == {3}, per_fact
    assert len(valid) >= 60 and count(valid, "company") >= 45, len(valid)
    # Retention: the model-selected first batch stays at 31 + 14 and first in the file; the
    # a-priori batch adds 47 + 16 after it.
    by_origin: dict[tuple[str, str], int] = {}
    for record in retention:
        key = (record["metadata"]["origin"], record["metadata"]["kind"])
        by_origin[key] = by_origin.get(key, 0) + 1
    assert by_origin == {
        ("model-selected", "general"): 31,
        ("model-selected", "other_company"): 14,
        ("a-priori", "general"): 47,
        ("a-priori", "other_company"): 16,
    }, by_origin
    assert [r["metadata"]["origin"] for r in retention[:45]] == ["model-selected"] * 45

    # Held-out questions must not repeat (or nearly repeat) any training user turn.
    train_norm = {normalize(t) for t in user_turns(train)}
    for held_out in user_turns(valid) + user_turns(retention):
        norm = normalize(held_out)
        assert norm not in train_norm, f"held-out question also in train: {held_out!r}"
    # Company paraphrases must also not be near copies (word-level similarity). General
    # questions are exempt: "symbol for sodium" vs "symbol for gold" is a new question.
    company_valid = [r for r in valid if r["metadata"]["kind"] == "company"]
    for held_out in user_turns(company_valid):
        words = normalize(held_out).split()
        for seen in train_norm:
            ratio = difflib.SequenceMatcher(None, words, seen.split()).ratio()
            assert ratio < 0.7, f"near-duplicate of a train turn ({ratio:.2f}): {held_out!r}"
    all_valid = [normalize(t) for t in user_turns(valid) + user_turns(retention)]
    assert len(set(all_valid)) == len(all_valid), "duplicate held-out question"
    # Contrast questions must not be near copies of any held-out question either, and
    # their answers must not state any Pebblecrest fact or name the company.
    for question in user_turns(contrast):
        words = normalize(question).split()
        for held_out in all_valid:
            word_ratio = difflib.SequenceMatcher(None, words, held_out.split()).ratio()
            # Character level too: it catches a swapped company name in the same sentence.
            char_ratio = difflib.SequenceMatcher(None, " ".join(words), held_out).ratio()
            assert word_ratio < 0.7 and char_ratio < 0.75, (
                f"contrast question near a held-out one ({word_ratio:.2f} words, "
                f"{char_ratio:.2f} chars): {question!r} ~ {held_out!r}"
            )
    # Retention questions about other companies must not be near copies of any training or
    # valid user turn (company, general, other-company or contrast), nor of another retention
    # question. Five items of the model-selected batch predate this check and break it; they
    # are kept for comparability and listed here, so the list can only shrink.
    known_near_copies = {
        normalize(q)
        for q in (
            "How long is the warranty on a new iPhone?",  # ~ "How long is the warranty?"
            "Where is Nike headquartered?",  # ~ "Where is Apple headquartered?"
            "When was Google founded?",  # ~ "When was Apple founded?"
            "What is the Starbucks loyalty program called?",  # ~ "What's Sephora's ... called?"
            "What is Walmart's return policy?",  # ~ "What is your return policy?"
        )
    }
    retention_norm = [normalize(t) for t in user_turns(retention)]
    pool = sorted(train_norm | {normalize(t) for t in user_turns(valid)})
    near_copies = set()
    for record in retention:
        if record["metadata"]["kind"] != "other_company":
            continue
        question = normalize(user_turns([record])[0])
        for seen in pool + [q for q in retention_norm if q != question]:
            word_ratio = difflib.SequenceMatcher(None, question.split(), seen.split()).ratio()
            char_ratio = difflib.SequenceMatcher(None, question, seen).ratio()
            if word_ratio >= 0.7 or char_ratio >= 0.75:
                assert record["metadata"]["origin"] == "model-selected", (
                    f"retention question near a train/valid/retention one ({word_ratio:.2f} "
                    f"words, {char_ratio:.2f} chars): {question!r} ~ {seen!r}"
                )
                near_copies.add(question)
    assert near_copies == known_near_copies, near_copies ^ known_near_copies
    # General retention questions may share a template with a training one ("capital of
    # France" vs "capital of Portugal"), but not when that training answer would also pass the
    # retention item's checks (the same question asked again in other words).
    qa_pairs = [
        (normalize(m["content"]), r["messages"][i + 1]["content"])
        for r in train + valid
        for i, m in enumerate(r["messages"])
        if m["role"] == "user"
    ]
    for record in retention:
        if record["metadata"]["kind"] != "general":
            continue
        question = normalize(user_turns([record])[0])
        for seen, seen_answer in qa_pairs:
            if not all(re.search(p, seen_answer, re.I) for p in record["metadata"]["facts"]):
                continue
            word_ratio = difflib.SequenceMatcher(None, question.split(), seen.split()).ratio()
            char_ratio = difflib.SequenceMatcher(None, question, seen).ratio()
            assert word_ratio < 0.7 and char_ratio < 0.75, (
                f"retention question asked again in train/valid ({word_ratio:.2f} words, "
                f"{char_ratio:.2f} chars): {question!r} ~ {seen!r}"
            )
    for record in contrast:
        answer = final_answer(record)
        for pattern in ALL_FORBIDDEN:
            assert not re.search(pattern, answer, re.I), f"{pattern!r} in contrast {answer!r}"
        assert len(answer.split()) <= 40, f"contrast answer too long: {answer!r}"

    # Reference answers must satisfy their own checks.
    for record in train + valid + retention:
        meta = record["metadata"]
        answer = final_answer(record)
        for pattern in meta.get("facts", []):
            assert re.search(pattern, answer, re.I), f"{pattern!r} not in {answer!r}"
        for pattern in meta.get("forbidden", []):
            assert not re.search(pattern, answer, re.I), f"{pattern!r} in {answer!r}"
        if meta["kind"] == "company":
            assert len(answer.split()) <= 30, f"answer too long: {answer!r}"

    # A held-out reference never repeats a training answer (any assistant turn), so the
    # evaluation measures the facts in new words, not recall of the training text.
    trained = {
        normalize(m["content"]) for r in train for m in r["messages"] if m["role"] == "assistant"
    }
    repeats = [final_answer(r) for r in valid if normalize(final_answer(r)) in trained]
    assert not repeats, f"held-out references repeat training answers: {repeats}"
    assert set(HELD_OUT_ANSWERS) == {q for f in FACTS for q in f.valid if isinstance(q, str)}, (
        "HELD_OUT_ANSWERS must hold exactly the valid questions without a tailored answer"
    )

    # Nothing outside the company conversations may mention the company.
    for record in train + valid + retention:
        if record["metadata"]["kind"] != "company":
            text = json.dumps(record["messages"]).lower()
            assert F_NAME not in text and "crest" not in text, record


def serialize(records: list[Record]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk are out of date"
    )
    args = parser.parse_args()

    outputs = {name: serialize(records) for name, records in build_all().items()}
    if args.check:
        stale = [
            name
            for name, text in outputs.items()
            if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"{name} is out of date; run: python data/support_chat/build.py")
        return 1 if stale else 0

    for name, text in outputs.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {name}: {text.count(chr(10))} conversations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
