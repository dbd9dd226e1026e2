// /notifications/: contact points, routing, mute timings and the notification log.
import { NotificationsView } from "./NotificationsView";

export default function NotificationsPage() {
  return <NotificationsView />;
}
