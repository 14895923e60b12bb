"""The data, with its domain rules as methods: conversations and their message
trees (the branch shown, titles, a reply's states), limits and the usage ledger,
the models offered and their prices, groups' models and limits, admin review,
worker heartbeats, announcements and who dismissed them, a new chat's example prompts.

May import Django, chat.text, chat.params and chat.markdown; nothing else of chat. Django
finds every model through this module.
"""

from chat.models.announcements import (
    Announcement,
    AnnouncementDismissal,
    AnnouncementQuerySet,
)
from chat.models.catalog import ChatModel, ChatModelQuerySet
from chat.models.conversations import Conversation, ConversationQuerySet, Preset
from chat.models.examples import ExamplePrompt, ExamplePromptQuerySet
from chat.models.groups import GroupPolicy
from chat.models.messages import INTERRUPTED_MESSAGE, Message, MessageQuerySet
from chat.models.review import ConversationAccess, SignupApproval, SignupPolicy
from chat.models.usage import DailyUsage, UserLimits
from chat.models.workers import Worker

__all__ = [
    "INTERRUPTED_MESSAGE",
    "Announcement",
    "AnnouncementDismissal",
    "AnnouncementQuerySet",
    "ChatModel",
    "ChatModelQuerySet",
    "Conversation",
    "ConversationAccess",
    "ConversationQuerySet",
    "DailyUsage",
    "ExamplePrompt",
    "ExamplePromptQuerySet",
    "GroupPolicy",
    "Message",
    "MessageQuerySet",
    "Preset",
    "SignupApproval",
    "SignupPolicy",
    "UserLimits",
    "Worker",
]
