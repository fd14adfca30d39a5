"""What tool_call requests are made of: the values (cities, names, chores, events, places, topics) and the
phrasings around them (chatter, asides, requests no tool serves). Pure data, no logic.
"""

CITIES = ("Paris", "Tokyo", "Oslo", "Lima", "Cairo", "Sydney", "Toronto", "Madrid", "Nairobi", "Seoul",
          "Berlin", "Chicago", "Mumbai", "Lisbon", "Dublin", "New York", "Buenos Aires", "Cape Town")
NAMES = ("Ana", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi",
         "Lena", "Maya", "Noor", "Omar", "Priya")
CHORES = ("call {name}", "email {name}", "buy milk", "water the plants", "take my medicine", "pay the rent",
          "pick up the kids", "feed the cat", "back up my laptop", "return the library books")
EVENTS = ("Team sync", "Dentist", "Budget review", "Yoga class", "Book club", "Project kickoff",
          "Piano lesson", "Sprint planning")
PLACES = ("Room 4B", "Cafe Luna", "Central Library", "Main Office", "Studio 3", "Hall B")
TOPICS = ("best pizza in Naples", "how to repot a cactus", "history of the Eiffel Tower",
          "electric bike reviews", "symptoms of the flu", "how tides work", "easy bread recipes",
          "the rules of cricket", "how to learn Spanish fast", "largest deserts in the world")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CHATTER = ("Thanks a lot!", "I'm in a bit of a rush today.", "Hope you're doing well.",
           "My week has been really busy.", "Sorry for all the questions.", "It's been a long day.",
           "Quick one for you.", "No rush on this.")
ASIDES = ("My sister lives in {city}.", "I was in {city} last spring.", "I had lunch with {name} today.",
          "{name} says hi.")  # harder distractors: they name a city or person that is not an argument
NO_TOOL = (
    ("Turn off the lights", "Play some jazz", "Order a pizza", "Tell me a joke", "Lock the front door"),
    ("Send a text to {name}", "Call {name}", "Open the garage door", "Turn up the heating"),
    ("Could you dim the bedroom lights a bit?", "Write a short poem about autumn.",
     "Please order more coffee beans."),
    ("I'd love to hear some music from the eighties, can you put some on?",
     "Can you let {name} know I'm running late?", "It's freezing in here, could you warm the place up?"),
)
