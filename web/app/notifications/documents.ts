// The Notifications page's GraphQL: contact points, the routing policy and its mute timings,
// the notification log, and the mutations behind each panel.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const ContactPoints = graphql(`
  query ContactPoints {
    contactPoints { id name kind settings secretsSet updatedBy updatedAt }
  }
`);
export type ContactPoint = ResultOf<typeof ContactPoints>["contactPoints"][number];

export const CreateContactPoint = graphql(`
  mutation CreateContactPoint($input: ContactPointInput!) { createContactPoint(input: $input) { id name } }
`);
export const UpdateContactPoint = graphql(`
  mutation UpdateContactPoint($id: ID!, $input: ContactPointInput!) { updateContactPoint(id: $id, input: $input) { id name } }
`);
export const DeleteContactPoint = graphql(`
  mutation DeleteContactPoint($id: ID!) { deleteContactPoint(id: $id) }
`);
export const TestContactPoint = graphql(`
  mutation TestContactPoint($id: ID!) { testContactPoint(id: $id) { ok temporary error } }
`);

export const Policy = graphql(`
  query NotificationPolicy { notificationPolicy }
`);
export const SetPolicy = graphql(`
  mutation SetNotificationPolicy($policy: JSON!) { setNotificationPolicy(policy: $policy) }
`);

export const MuteTimings = graphql(`
  query MuteTimings { muteTimings }
`);
export const SetMuteTiming = graphql(`
  mutation SetMuteTiming($timing: JSON!) { setMuteTiming(timing: $timing) }
`);
export const DeleteMuteTiming = graphql(`
  mutation DeleteMuteTiming($name: String!) { deleteMuteTiming(name: $name) }
`);

export const NotificationLog = graphql(`
  query NotificationLog($where: NotificationWhere, $limit: Int) {
    notifications(where: $where, limit: $limit) {
      id contactPointId ruleId instance kind status attempts repeats lastError note content createdAt sentAt nextAttemptAt
    }
  }
`);
export type LogEntry = ResultOf<typeof NotificationLog>["notifications"][number];
