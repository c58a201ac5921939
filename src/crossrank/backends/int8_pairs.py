"""Query-passage pairs that calibrate OpenVINO's static int8 quantization when none are given.

Static int8 fixes each activation's scale from the values seen on sample inputs, so the samples
should look like what the reranker will read: questions, keyword queries and claims, with passages
that answer them, miss them, or run long. These were written for crossrank (no data set is
shipped); a few are not in English for multilingual checkpoints. Pass your own pairs to
:func:`crossrank.backends.openvino.quantize_int8` to calibrate on your data instead.
"""

from __future__ import annotations

from typing import List, Tuple

TOPICS: Tuple[Tuple[str, str], ...] = (
    (
        "what causes the seasons on earth",
        "The seasons are caused by the tilt of Earth's rotational axis, about 23.4 degrees relative "
        "to the plane of its orbit. As Earth travels around the Sun, the hemisphere tilted toward "
        "the Sun receives more direct sunlight and longer days, which warms it, while the other "
        "hemisphere receives slanting light and shorter days. The distance between Earth and the "
        "Sun changes only slightly over the year and is not the cause.",
    ),
    (
        "Vitamin D supplementation reduces the risk of fractures in older adults.",
        "In a randomized trial of 25,871 adults aged 50 and over, daily supplementation with 2000 IU "
        "of vitamin D3 for a median of 5.3 years did not reduce the incidence of total, nonvertebral "
        "or hip fractures compared with placebo. Results were similar in subgroups defined by "
        "baseline serum 25-hydroxyvitamin D levels, sex, age and body-mass index.",
    ),
    (
        "python sort list of dicts by key",
        "Use the built-in sorted() with a key function: sorted(rows, key=lambda row: row['age']) "
        "returns a new list ordered by each dictionary's 'age' value. operator.itemgetter('age') "
        "is a faster key than a lambda. Pass reverse=True for descending order, or call "
        "rows.sort(key=...) to sort the list in place. Python's sort is stable, so sorting by a "
        "secondary key first and the primary key second gives a two-level order.",
    ),
    (
        "How do I reset my router to factory settings?",
        "Locate the small reset hole on the back of the router. With the router powered on, press "
        "and hold the button inside with a paper clip for about ten seconds, until the status "
        "lights blink. Release it and wait two to three minutes while the router restarts. All "
        "custom settings, including the Wi-Fi name and password, return to the defaults printed "
        "on the label underneath the device.",
    ),
    (
        "treaty of westphalia significance",
        "The Peace of Westphalia, a series of treaties signed in Osnabrück and Münster in 1648, "
        "ended the Thirty Years' War in the Holy Roman Empire and the Eighty Years' War between "
        "Spain and the Dutch Republic. Historians often credit it with establishing the principle "
        "of state sovereignty: each state had exclusive authority over its territory and domestic "
        "affairs, including the choice of religion, free from outside interference.",
    ),
    (
        "symptoms of iron deficiency anemia",
        "Iron deficiency anemia develops when the body lacks enough iron to produce hemoglobin. "
        "Common symptoms include fatigue, weakness, pale skin, shortness of breath on exertion, "
        "dizziness, cold hands and feet, brittle nails and, in some people, cravings for ice or "
        "starch. Mild cases may cause no symptoms at all. A blood test measuring hemoglobin and "
        "ferritin confirms the diagnosis.",
    ),
    (
        "best way to store fresh basil",
        "Treat basil like cut flowers: trim the stems, place the bunch in a glass with an inch of "
        "water and leave it on the counter, loosely covered with a plastic bag. Refrigeration "
        "turns the leaves black because basil is sensitive to cold. Change the water every day or "
        "two and the herb keeps for about a week.",
    ),
    (
        "What is the difference between a stock and a bond?",
        "A stock is a share of ownership in a company: its value rises and falls with the company's "
        "fortunes, and holders may receive dividends. A bond is a loan to a company or government "
        "that pays interest on a fixed schedule and returns the principal at maturity. Bonds are "
        "usually less volatile than stocks, and bondholders are paid before shareholders if the "
        "issuer goes bankrupt.",
    ),
    (
        "Aspirin lowers the risk of a first heart attack in healthy people over 70.",
        "Among 19,114 community-dwelling older adults without cardiovascular disease, 100 mg of "
        "aspirin daily did not significantly reduce the risk of cardiovascular disease over 4.7 "
        "years but led to a higher rate of major hemorrhage than placebo, mostly gastrointestinal "
        "bleeding and intracranial hemorrhage.",
    ),
    (
        "marathon world record",
        "Kelvin Kiptum of Kenya set the men's marathon world record of 2:00:35 at the Chicago "
        "Marathon on 8 October 2023, breaking the mark of 2:01:09 set by Eliud Kipchoge in Berlin "
        "the year before. Kiptum was 23 and running only his third marathon. Ruth Chepngetich "
        "set the women's record of 2:09:56 in Chicago in 2024.",
    ),
    (
        "how does a heat pump work in winter",
        "A heat pump moves heat instead of making it. In heating mode its refrigerant evaporates "
        "in the outdoor coil, absorbing heat even from air well below freezing; a compressor then "
        "raises the refrigerant's pressure and temperature, and the indoor coil releases that heat "
        "into the house. Because it moves heat, a heat pump can deliver three to four units of heat "
        "for each unit of electricity it uses, though its efficiency falls as the outdoor "
        "temperature drops.",
    ),
    (
        "tenant rights when landlord does not return deposit",
        "Most jurisdictions require a landlord to return a security deposit within a fixed period "
        "after the tenancy ends, commonly 14 to 30 days, together with an itemized list of any "
        "deductions for damage beyond normal wear and tear. A landlord who withholds a deposit "
        "without justification may owe the tenant the deposit plus a penalty. Tenants should "
        "document the unit's condition with photos at move-in and move-out.",
    ),
    (
        "photosynthesis light dependent reactions",
        "In the light-dependent reactions, which take place in the thylakoid membranes of the "
        "chloroplast, chlorophyll absorbs light energy that splits water molecules, releasing "
        "oxygen. The energy drives electrons along an electron transport chain, producing ATP and "
        "NADPH, which the Calvin cycle then uses to fix carbon dioxide into sugars.",
    ),
    (
        "Why is my sourdough bread dense?",
        "Dense sourdough usually comes from underproofing: the dough has not fermented long "
        "enough for the yeast to produce the gas that opens the crumb. A sluggish starter, a cold "
        "kitchen or too little time are the common causes. Make sure the starter doubles within "
        "four to eight hours of feeding, and let the dough rise until it has grown by about half "
        "and feels airy before shaping.",
    ),
    (
        "kubernetes pod stuck in CrashLoopBackOff",
        "CrashLoopBackOff means a container starts, exits, and is restarted by the kubelet with an "
        "increasing delay. Run kubectl logs <pod> --previous to see the output of the crashed "
        "container and kubectl describe pod <pod> for events such as failed probes or OOMKilled. "
        "Typical causes are a wrong command or missing environment variable, a failing liveness "
        "probe, or a memory limit set too low.",
    ),
    (
        "who painted the girl with a pearl earring",
        "Girl with a Pearl Earring is an oil painting by the Dutch Golden Age painter Johannes "
        "Vermeer, dated to around 1665. It is not a portrait but a tronie, a study of a face, of a "
        "girl wearing a blue and yellow turban and a large pearl earring. The painting has been in "
        "the collection of the Mauritshuis in The Hague since 1902.",
    ),
    (
        "effects of sleep deprivation on memory",
        "Sleep supports memory consolidation: during slow-wave sleep the hippocampus replays "
        "recent experiences and transfers them to the neocortex for long-term storage. Studies "
        "show that a single night without sleep reduces the ability to form new memories the next "
        "day by about 40 percent, and chronic short sleep is associated with poorer attention and "
        "working memory.",
    ),
    (
        "electric car battery lifespan",
        "Most electric car batteries are designed to last the life of the vehicle. Data from large "
        "fleets show an average loss of about 1.8 percent of capacity per year, so a battery "
        "typically retains more than 80 percent of its range after ten years. Manufacturers "
        "commonly warrant batteries for eight years or 160,000 kilometres. Frequent fast charging "
        "and extreme heat speed up degradation.",
    ),
    (
        "Welche Vorteile hat die Photovoltaik für Eigenheime?",
        "Eine Photovoltaikanlage auf dem eigenen Dach senkt die Stromkosten, weil ein Teil des "
        "Verbrauchs direkt mit selbst erzeugtem Strom gedeckt wird. Überschüsse werden gegen eine "
        "Vergütung ins Netz eingespeist. Mit einem Batteriespeicher steigt der Eigenverbrauch "
        "deutlich, allerdings erhöhen sich auch die Anschaffungskosten.",
    ),
    (
        "Quelle est la capitale de l'Australie ?",
        "Canberra est la capitale de l'Australie depuis 1913. La ville a été choisie comme "
        "compromis entre Sydney et Melbourne, les deux plus grandes villes du pays, qui se "
        "disputaient ce rôle. Le Parlement fédéral s'y est installé en 1927.",
    ),
    (
        "¿Cuántos huesos tiene el cuerpo humano adulto?",
        "El esqueleto de una persona adulta tiene 206 huesos. Al nacer, un bebé tiene alrededor de "
        "300 piezas óseas, muchas de las cuales se fusionan durante el crecimiento, como ocurre con "
        "los huesos del cráneo y del sacro.",
    ),
    (
        "如何提高睡眠质量",
        "保持规律的作息时间，每天在同一时间睡觉和起床。睡前一小时避免使用手机和电脑，减少咖啡因和酒精的"
        "摄入。卧室应保持安静、黑暗和凉爽。适量的白天运动也有助于晚上更快入睡。",
    ),
    (
        "transformer attention mechanism explained",
        "Self-attention lets every token in a sequence look at every other token. Each token is "
        "projected into a query, a key and a value vector; the dot products of a token's query with "
        "all keys, scaled and passed through a softmax, give weights that mix the value vectors "
        "into the token's new representation. Multi-head attention runs several such projections "
        "in parallel so the model can attend to different relations at once.",
    ),
    (
        "symptoms of a concussion in children",
        "After a blow to the head, a child with a concussion may complain of headache, nausea, "
        "dizziness or blurred vision, seem dazed or confused, be unusually irritable or sleepy, "
        "and have trouble remembering what happened. Symptoms can appear hours later. Seek "
        "emergency care for repeated vomiting, a worsening headache, seizures, or unequal pupils.",
    ),
)


def calibration_pairs() -> List[Tuple[str, str]]:
    """The default calibration set: each query with its passage, with an unrelated passage, and
    with a long passage (several passages joined, a few hundred tokens) that contains its own."""
    count = len(TOPICS)
    pairs: List[Tuple[str, str]] = []
    for i, (query, passage) in enumerate(TOPICS):
        pairs.append((query, passage))
        pairs.append((query, TOPICS[(i + 7) % count][1]))
        if i % 2 == 0:
            joined = [TOPICS[(i + k) % count][1] for k in (3, 9, 0, 15, 5)]
            pairs.append((query, " ".join(joined)))
    return pairs


__all__ = ["TOPICS", "calibration_pairs"]
