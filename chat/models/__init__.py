"""The data, with its domain rules as methods: conversations and their message
trees (the branch shown, titles, a reply's states), limits and the usage ledger,
admin review, worker heartbeats.

May import Django, chat.text and chat.params; nothing else of chat. Django
finds every model through this module.
"""

from chat.models.conversations import Conversation, ConversationQuerySet, Preset
from chat.models.messages import INTERRUPTED_MESSAGE, Message, MessageQuerySet
from chat.models.review import ConversationAccess, SignupApproval, SignupPolicy
from chat.models.usage import DailyUsage, UserLimits
from chat.models.workers import Worker

__all__ = [
    "INTERRUPTED_MESSAGE",
    "Conversation",
    "ConversationAccess",
    "ConversationQuerySet",
    "DailyUsage",
    "Message",
    "MessageQuerySet",
    "Preset",
    "SignupApproval",
    "SignupPolicy",
    "UserLimits",
    "Worker",
]
