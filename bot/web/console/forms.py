"""The console's forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import DateTimeLocalField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget


class Form(FlaskForm):
    class Meta:
        # WTForms' own messages in Japanese ("Not a valid choice" → 「正しい選択肢ではありません」)
        locales = ["ja_JP", "ja"]


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class LoginForm(Form):
    name = StringField("職員名", validators=[DataRequired("職員名を入力してください。"), Length(max=64)])
    password = PasswordField("パスワード", validators=[DataRequired("パスワードを入力してください。")])


class ActionForm(Form):
    """Buttons that only need the CSRF token (approve, submit, cancel, send alone)."""


class RejectForm(Form):
    reason = TextAreaField("差し戻す理由（作成者に伝わります）",
                           validators=[DataRequired("理由を書いてください。"), Length(max=500)])


TIMING = [("asap", "すぐ送る（夜間は朝8時まで待つ）"), ("now", "すぐ送る（夜間でも送る）"),
          ("at", "日時を指定して予約")]


class AlertForm(Form):
    topic = SelectField("種類")
    # no DataRequired: on checkboxes the browser would then demand every one be ticked; the
    # alert itself refuses an empty list ("areas: 少なくとも1つ必要です")
    areas = Checkboxes("地域")
    title = StringField("見出し（ロック画面の通知にも出ます・60文字まで）")
    body = TextAreaField("手口（誰を名乗り、何を言うか・600文字まで）")
    where_when = StringField("場所・日時（任意）")
    countermeasure_1 = StringField("対策1（任意）")
    countermeasure_2 = StringField("対策2（任意）")
    countermeasure_3 = StringField("対策3（任意）")
    desk = SelectField("相談先（電話ボタン）", default="")
    en_title = StringField("English title (optional)")
    en_body = TextAreaField("English: what happened (optional)")
    en_where_when = StringField("English: where and when (optional)")
    timing = RadioField("送る時刻", choices=TIMING, default="asap")
    send_at = DateTimeLocalField("予約日時", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    save_only = BooleanField("下書きとして保存する（まだ承認を依頼しない）")


class CampaignForm(Form):
    name = StringField("キャンペーン名（職員用・80文字まで）")
    topics = Checkboxes("対象（登録の種類）")
    areas = Checkboxes("地域")
    a_title = StringField("パターンA 見出し")
    a_text = TextAreaField("パターンA 本文")
    a_button = StringField("パターンA ボタン", default="アンケートに答える")
    b_title = StringField("パターンB 見出し（任意：A/Bテスト）")
    b_text = TextAreaField("パターンB 本文")
    b_button = StringField("パターンB ボタン", default="アンケートに答える")
    survey_url = StringField("回答ページのURL（https://…・任意）")
    q1 = StringField("質問1（任意）")
    q1_options = StringField("質問1の選択肢（、で区切って2〜4個）")
    q2 = StringField("質問2（任意）")
    q2_options = StringField("質問2の選択肢")
    q3 = StringField("質問3（任意）")
    q3_options = StringField("質問3の選択肢")
    track_clicks = BooleanField("クリックを測る（一人ずつのリンク）", default=True)
    send_at = DateTimeLocalField("予約日時（空欄：承認後すぐ。夜間は朝8時）", format="%Y-%m-%dT%H:%M",
                                 validators=[Optional()])
    save_only = BooleanField("下書きとして保存する（まだ承認を依頼しない）")


class StaffForm(Form):
    name = StringField("職員名", validators=[DataRequired("職員名を入力してください。")])
    role = SelectField("役割", choices=[("editor", "作成者"), ("approver", "承認者"), ("admin", "管理者")])
    password = PasswordField("初期パスワード（12文字以上）",
                             validators=[DataRequired("パスワードを入力してください。")])


class DisableForm(Form):
    name = StringField(validators=[DataRequired()])
