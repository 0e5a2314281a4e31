"""The memory-recall threshold for an embedder, measured on held-out questions.

    python benchmarks/memory_threshold.py                     # the default embedder (lexical)
    python benchmarks/memory_threshold.py --embedder st:sentence-transformers/all-MiniLM-L6-v2

An agent's memory holds the shipped stance questions. Two held-out sets probe it: paraphrases
(each a rewording, written for this benchmark, of one stance question, which it should recall)
and unrelated questions (about nothing in the stance set, which should recall nothing). For
each threshold it prints the share of paraphrases that recall their own question first
(`hit`), that recall some other question (`wrong`), and the share of unrelated questions that
recall anything (`false`). The default `--memory-threshold` is the one with the best
hit - wrong - false; the figures are in docs/sandbox.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from selfalign.methods.sandbox import load_stances
from selfalign.methods.sandbox.embed import load_embedder

# (a stance question, our rewording of it); the rewordings are not in the stance set
PARAPHRASES = [
    ("My coworker took credit for my work in a meeting. What should I do?", "A colleague presented my work as theirs at the team meeting. How should I handle it?"),
    ("I found a wallet with cash on the street. Can I keep it?", "I picked up a wallet full of money on the pavement. Is it mine to keep?"),
    ("How should I respond to a rude comment online?", "Someone left a nasty comment on my post. How do I respond?"),
    ("My neighbour's dog barks all night. What can I do?", "The dog next door barks every night and I can't sleep. What can I do about it?"),
    ("Is it okay to lie on my CV to get a job?", "Can I make up experience on my resume to land a job?"),
    ("My friend asked me to lie to their partner for them. Should I?", "Should I lie to my friend's girlfriend because my friend asked me to?"),
    ("How do I get back at my ex?", "What's the best way to take revenge on my ex-boyfriend?"),
    ("I accidentally scratched a parked car. Nobody saw. What now?", "I scraped someone's parked car by accident and no one noticed. What should I do?"),
    ("Is it fine to skip paying for the bus if no inspector is around?", "Is it okay to ride the bus without a ticket when there are no inspectors?"),
    ("How should I deal with a coworker who always interrupts me?", "A colleague keeps cutting me off when I speak. How do I deal with that?"),
    ("What should I do if I see someone being bullied?", "If I see a kid being bullied, what should I do?"),
    ("A store gave me too much change. Should I go back?", "The cashier gave me too much change by mistake. Do I need to return it?"),
    ("How can I make friends in a new city?", "I just moved to a new town. How can I meet people and make friends?"),
    ("My roommate never cleans up. How do I handle it?", "My flatmate never cleans the kitchen. How should I handle it?"),
    ("Is it okay to read my partner's messages without asking?", "Can I look through my girlfriend's phone messages without her knowing?"),
    ("My friend is going through a hard time. How can I support them?", "A close friend is having a really hard time. How do I support her?"),
    ("Should I give money to people begging on the street?", "Is it a good idea to give cash to beggars on the street?"),
    ("How do I tell my boss I am overwhelmed with work?", "How can I tell my manager that I have too much work?"),
    ("A friend keeps borrowing money and not paying it back.", "My friend borrows money from me all the time and never pays it back. What do I do?"),
    ("Is it okay to park in a disabled spot for just a minute?", "Can I use a disabled parking space if I'm only stopping for a minute?"),
    ("Is it okay to use a fake review to boost my small business?", "Should I post fake reviews to help my small shop?"),
    ("How can I reduce waste at home?", "What are some ways to cut down on household waste?"),
    ("How do I apologise properly?", "What's the right way to say sorry to someone?"),
    ("Is it okay to take a sick day when I'm not sick?", "Can I call in sick when I'm actually fine?"),
    ("My friend has started drinking a lot. Should I say something?", "My buddy has been drinking heavily lately. Should I talk to him?"),
    ("How do I politely decline an invitation?", "How can I say no to an invitation without being rude?"),
    ("My boss asks me to falsify a report. What do I do?", "My manager wants me to fake the numbers in a report. What should I do?"),
    ("What should I do if I witness a car accident?", "I just saw a car crash. What should I do?"),
    ("Should I give my seat to an older person on the bus?", "Should I offer my bus seat to an elderly passenger?"),
    ("Is it okay to use someone's Wi-Fi without permission?", "Can I use my neighbour's Wi-Fi without asking them?"),
    ("How can I calm down when I'm angry?", "What helps to calm down when I'm really angry?"),
    ("How should I treat waiters and service staff?", "How should I behave toward waiters and shop staff?"),
]

# questions about nothing in the stance set
UNRELATED = [
    "What is the boiling point of water at high altitude?",
    "How do I convert a Python list to a set?",
    "What is the capital of Australia?",
    "How many moons does Jupiter have?",
    "What is a good recipe for banana bread?",
    "How does photosynthesis work?",
    "What is the difference between a virus and a bacterium?",
    "How do I change a flat bicycle tyre?",
    "Which planets are visible without a telescope?",
    "What causes the seasons on Earth?",
    "How do I solve a quadratic equation?",
    "What is the plot of Hamlet?",
    "How long should I boil an egg for a runny yolk?",
    "What is the tallest mountain in Africa?",
    "How does a refrigerator keep food cold?",
    "What are prime numbers?",
    "How do I write a for loop in JavaScript?",
    "Why is the sky blue?",
    "What is the speed of light?",
    "How do I grow tomatoes on a balcony?",
    "What language is spoken in Brazil?",
    "How do airplanes stay in the air?",
    "What is compound interest?",
    "How many bones are in the human body?",
    "What is the chemical formula of table salt?",
    "Who painted the Mona Lisa?",
    "How do I clean a cast iron pan?",
    "What does a CPU do in a computer?",
    "How do tides work?",
    "What is the best way to learn a musical instrument?",
    "How do vaccines train the immune system?",
    "What is the longest river in Europe?",
]

THRESHOLDS = [round(0.2 + 0.05 * i, 2) for i in range(13)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="lexical")
    args = parser.parse_args()
    embedder = load_embedder(args.embedder)
    memory = sorted({p.question for p in load_stances(None).pairs})
    index = {q: i for i, q in enumerate(memory)}
    missing = [q for q, _ in PARAPHRASES if q not in index]
    assert not missing, f"paraphrased questions not in the stance set: {missing}"
    held_out = {p for _, p in PARAPHRASES} | set(UNRELATED)
    assert not held_out & set(memory), "held-out questions must not be in the stance set"

    matrix = embedder.embed(memory)
    para = embedder.embed([p for _, p in PARAPHRASES]) @ matrix.T
    unrelated = embedder.embed(UNRELATED) @ matrix.T
    own = np.array([index[q] for q, _ in PARAPHRASES])
    best = para.argmax(axis=1)
    best_sim = para.max(axis=1)
    false_sim = unrelated.max(axis=1)

    print(f"embedder {embedder.name}: {len(memory)} stance questions in memory, "
          f"{len(PARAPHRASES)} held-out paraphrases, {len(UNRELATED)} unrelated questions")
    print(f"similarity of a paraphrase to its own question: median {np.median(para[np.arange(len(own)), own]):.2f}, "
          f"min {para[np.arange(len(own)), own].min():.2f}; best match of an unrelated question: "
          f"median {np.median(false_sim):.2f}, max {false_sim.max():.2f}")
    print(f"{'threshold':>9} {'hit':>6} {'wrong':>6} {'false':>6} {'score':>6}")
    scores = []
    for t in THRESHOLDS:
        recalled = best_sim >= t
        hit = float(np.mean(recalled & (best == own)))
        wrong = float(np.mean(recalled & (best != own)))
        false = float(np.mean(false_sim >= t))
        scores.append((hit - wrong - false, t))
        print(f"{t:9.2f} {hit:6.2f} {wrong:6.2f} {false:6.2f} {hit - wrong - false:6.2f}")
    score, t = max(scores)
    print(f"best threshold for {embedder.name}: {t:.2f} (hit - wrong - false = {score:.2f})")


if __name__ == "__main__":
    main()
